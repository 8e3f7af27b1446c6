"""PostgreSQL over TLS with certificate verification, against a local server whose
certificates come from a CA this test generates."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from devstack import postgres
from devstack.pipeline import free_port
from pydantic import SecretStr
from sales_common.db import check_database, create_pool
from sales_common.settings import PostgresSettings

from tests.pki import Pki, make_pki

pytestmark = pytest.mark.integration


@dataclass
class TlsServer:
    port: int
    pki: Pki
    data: Path

    def restart_with(self, cert: Path, key: Path) -> None:
        conf = self.data / "postgresql.auto.conf"
        conf.write_text(f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n")
        subprocess.run(
            postgres.as_db_user(
                [
                    str(postgres.bin_dir() / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-w",
                    "restart",
                    "-m",
                    "fast",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    root = tmp_path_factory.mktemp("pgtls")
    pki = make_pki(root)
    data = root / "data"
    port = free_port()
    binaries = postgres.bin_dir()
    data.mkdir()
    postgres.own(root)
    subprocess.run(
        postgres.as_db_user(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # TLS only over TCP: a plaintext attempt is refused by pg_hba.
    (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
    (data / "postgresql.auto.conf").write_text(
        f"ssl = on\nssl_cert_file = '{pki.server_cert}'\nssl_key_file = '{pki.server_key}'\n"
    )
    postgres.own(root)
    log = root / "pg.log"
    subprocess.run(
        postgres.as_db_user(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
                "-w",
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield TlsServer(port, pki, data)
    finally:
        subprocess.run(
            postgres.as_db_user(
                [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            ),
            check=False,
            stdout=subprocess.DEVNULL,
        )


def settings(server: TlsServer, host: str, sslmode: str) -> PostgresSettings:
    return PostgresSettings(
        dsn=SecretStr(f"postgresql://postgres@{host}:{server.port}/postgres"),
        sslmode=sslmode,
        sslrootcert=str(server.pki.ca_cert),
    )


async def test_verify_full_connects_over_tls(tls_server: TlsServer) -> None:
    pool = await create_pool(settings(tls_server, "localhost", "verify-full"))
    try:
        await check_database(pool)
        assert (
            await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
        )
    finally:
        await pool.close()


async def test_plaintext_is_refused_by_the_server(tls_server: TlsServer) -> None:
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await asyncpg.connect(
            settings(tls_server, "127.0.0.1", "disable").dsn.get_secret_value(), ssl=False
        )


async def test_certificate_for_another_host_is_refused(tls_server: TlsServer) -> None:
    tls_server.restart_with(tls_server.pki.wrong_cert, tls_server.pki.wrong_key)
    try:
        pool = await create_pool(settings(tls_server, "localhost", "verify-full"))
        try:
            with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
                await check_database(pool)
        finally:
            await pool.close()
        # verify-ca checks the CA but not the name: it connects. Ask for verify-full.
        pool = await create_pool(settings(tls_server, "localhost", "verify-ca"))
        try:
            await check_database(pool)
        finally:
            await pool.close()
    finally:
        tls_server.restart_with(tls_server.pki.server_cert, tls_server.pki.server_key)


async def test_an_unknown_ca_is_refused(tls_server: TlsServer, tmp_path: Path) -> None:
    other = make_pki(tmp_path)
    wrong_root = settings(tls_server, "localhost", "verify-full").model_copy(
        update={"sslrootcert": str(other.ca_cert)}
    )
    pool = await create_pool(wrong_root)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await check_database(pool)
    finally:
        await pool.close()
