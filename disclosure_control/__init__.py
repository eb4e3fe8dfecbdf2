"""Statistical disclosure control: pure functions over frames and a policy (no Prefect, DuckDB, GX or file I/O)."""
