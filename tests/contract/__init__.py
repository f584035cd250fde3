"""Contract tests: every payment adapter against one suite, plus each provider's own wire tests."""
