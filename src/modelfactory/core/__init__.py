"""Core scripts: what the notebooks call to read data, train, evaluate and score. A data scientist
reads and changes these; nothing here knows where it runs (laptop, CI or Azure ML)."""
