"""The database schema every service shares: versioned SQL in `sql/`, the migrator
(`migrations.py`) and the `sales-migrate` command (`cli.py`, settings in `config.py`).

Ingest writes `uploads`, the loader writes the rest, the dashboard reads them all: the
schema belongs to none of them. Each service keeps its own SQL in its repository.py.
"""
