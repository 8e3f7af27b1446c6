"""sales-migrate: apply the pending database migrations and exit.

Reads `MIGRATE_POSTGRES__DSN` (and `MIGRATE_POSTGRES__SSLMODE`, `MIGRATE_LOG_LEVEL`, ...).
Containers run it as `python -m sales_common.entrypoint migrate`.
"""

from __future__ import annotations

import argparse
import asyncio

from sales_common.logging import get_logger
from sales_common.schema.config import MigrateSettings
from sales_common.schema.migrations import migrate

log = get_logger(__name__)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    settings = MigrateSettings()
    settings.configure_logging("migrate")
    applied = asyncio.run(migrate(settings.postgres))
    log.info("migrations_done", applied=applied)


if __name__ == "__main__":
    main()
