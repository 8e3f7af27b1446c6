"""PostgreSQL from the system's binaries, in a project-local data directory, on 127.0.0.1."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from devstack import processes
from devstack.config import StackConfig

OS_USER = "postgres"  # initdb and postgres refuse to run as root


def bin_dir() -> Path:
    """The newest installed PostgreSQL; installs Debian's package when there is none."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major, reverse=True)
    if not candidates and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major, reverse=True)
    if not candidates:
        found = shutil.which("pg_ctl")
        if found is None:
            raise processes.StackError("PostgreSQL is not installed (apt-get install postgresql)")
        return Path(found).resolve().parent
    return Path(candidates[0]).parent


def _major(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


def as_db_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", OS_USER], check=True)
    return ["runuser", "-u", OS_USER, "--", *command]


def own(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(OS_USER)
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        # The postgres user must be able to reach the data directory.
        for parent in path.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)


def data_dir(config: StackConfig) -> Path:
    return config.postgres_dir / "data"


def superuser_dsn(config: StackConfig, database: str = "postgres") -> str:
    return f"postgresql://postgres@{config.host}:{config.postgres_port}/{database}"


def accepting(config: StackConfig) -> bool:
    """The server answers on its TCP port (pg_isready), not merely "a pid file exists"."""
    answer = subprocess.run(
        [
            str(bin_dir() / "pg_isready"),
            "-q",
            "-h",
            config.host,
            "-p",
            str(config.postgres_port),
            "-t",
            "3",
        ],
        check=False,
    )
    return answer.returncode == 0


def start(config: StackConfig, app_password: str) -> None:
    """initdb on first use, start the server, create the `sales` role and database."""
    pgdata = data_dir(config)
    binaries = bin_dir()
    config.postgres_dir.mkdir(parents=True, exist_ok=True)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    socket_dir = config.postgres_dir / "socket"
    socket_dir.mkdir(exist_ok=True)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(parents=True, exist_ok=True)
        own(config.postgres_dir)
        subprocess.run(
            as_db_user(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # Local superuser by socket; applications authenticate with a password over TCP.
        (pgdata / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all postgres {config.host}/32 trust\n"
            f"host all all {config.host}/32 scram-sha-256\n"
        )
    own(config.postgres_dir)
    log_file = config.log_dir / "postgres.log"
    log_file.touch()
    own(log_file)
    status = subprocess.run(
        as_db_user([str(binaries / "pg_ctl"), "-D", str(pgdata), "status"]),
        capture_output=True,
    )
    if status.returncode != 0:
        options = (
            f"-p {config.postgres_port} -k {socket_dir} -c listen_addresses={config.host}"
            " -c max_connections=200 -c shared_buffers=256MB -c fsync=on"
        )
        subprocess.run(
            as_db_user(
                [
                    str(binaries / "pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-l",
                    str(log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    _psql(
        config,
        binaries,
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sales') THEN
                CREATE ROLE sales LOGIN PASSWORD '{app_password}' CREATEDB;
            ELSE
                ALTER ROLE sales PASSWORD '{app_password}';
            END IF;
        END $$;
    """,
    )
    exists = _psql(config, binaries, "SELECT 1 FROM pg_database WHERE datname = 'sales'")
    if not exists.strip():
        _psql(config, binaries, "CREATE DATABASE sales OWNER sales")


def _psql(config: StackConfig, binaries: Path, sql: str) -> str:
    result = subprocess.run(
        [
            str(binaries / "psql"),
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            config.host,
            "-p",
            str(config.postgres_port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def stop(config: StackConfig) -> bool:
    pgdata = data_dir(config)
    if not (pgdata / "postmaster.pid").exists():
        return False
    subprocess.run(
        as_db_user([str(bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]),
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return True
