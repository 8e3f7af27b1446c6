from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sales_common.logging import configure_logging, get_logger
from sales_common.schema.config import MigrateSettings


def test_the_log_file_rotates_by_size_and_keeps_a_bounded_number(tmp_path: Path) -> None:
    log_file = tmp_path / "sales.log"
    configure_logging("test", log_file=str(log_file), max_bytes=2_000, backups=2)
    try:
        log = get_logger("rotation")
        for i in range(200):
            log.info("line", i=i, padding="x" * 50)
    finally:
        configure_logging("test")  # closes the file handler
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["sales.log", "sales.log.1", "sales.log.2"]
    assert all((tmp_path / name).stat().st_size <= 2_000 for name in files)
    assert '"i":199' in log_file.read_text()


def test_rotation_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FILE_MAX_BYTES", "1000")
    monkeypatch.setenv("LOG_FILE_BACKUPS", "5")
    settings = MigrateSettings()
    assert (settings.log_file_max_bytes, settings.log_file_backups) == (1000, 5)


def test_uvicorn_writes_no_access_line_of_its_own() -> None:
    configure_logging("test")
    # uvicorn formats its access line only when this logger reaches a handler; requests are
    # logged once, with fields, by sales_common.observability.HttpTelemetry.
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    assert logging.getLogger("uvicorn.error").hasHandlers()  # its errors still reach the log
