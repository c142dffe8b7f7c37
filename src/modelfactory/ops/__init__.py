"""Ops scripts: what runs the core somewhere and keeps the record: the runner and kernels, params
into notebooks, MLflow tracking and the registry, packaging and serving, Azure ML jobs, the CLI."""
