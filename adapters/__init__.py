"""Payment-provider adapters: a library that imports nothing from gateway or reconciliation."""
