"""The schema home: its SQL is found as package data, and sales-migrate reads its own prefix."""

from __future__ import annotations

import pytest
from sales_common.schema.config import MigrateSettings
from sales_common.schema.migrations import available


def test_migrations_are_package_data_in_version_order() -> None:
    versions = [version for version, _ in available()]
    assert versions[0] == "0001_initial"
    assert versions == sorted(versions)
    assert all(sql.strip() for _, sql in available())


def test_sales_migrate_reads_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATE_POSTGRES__DSN", "postgresql://migrate@db:5432/sales")
    monkeypatch.setenv("LOADER_POSTGRES__DSN", "postgresql://loader@db:5432/sales")
    monkeypatch.setenv("MIGRATE_POSTGRES__SSLMODE", "verify-full")
    settings = MigrateSettings()
    assert settings.postgres.dsn.get_secret_value() == "postgresql://migrate@db:5432/sales"
    assert settings.postgres.sslmode == "verify-full"
