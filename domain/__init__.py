"""The gateway's pure core: rules over plain values, importing nothing of Flask, SQLAlchemy or the adapters."""
