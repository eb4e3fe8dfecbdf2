"""Prefect flows and tasks, readers and writers, the warehouse, the synthetic county and the CLI."""
