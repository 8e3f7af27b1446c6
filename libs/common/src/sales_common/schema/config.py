from __future__ import annotations

from pydantic import Field

from sales_common.settings import PostgresSettings, ProcessSettings


class MigrateSettings(ProcessSettings):
    """The `sales-migrate` command's settings: `MIGRATE_POSTGRES__DSN` and friends."""

    model_config = ProcessSettings.model_config | {"env_prefix": "MIGRATE_"}

    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
