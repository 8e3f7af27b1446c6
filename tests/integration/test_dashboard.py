"""dashboard against the real database: OAuth2 client credentials and the read API."""

from __future__ import annotations

import base64
import uuid

import asyncpg
import pytest
from dashboard.config import ClientSettings, DashboardSettings
from dashboard.main import create_app
from sales_common.auth import hash_secret
from sales_common.settings import AuthSettings, PostgresSettings

from tests.helpers import bearer, serve

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(postgres_settings: PostgresSettings, auth_settings: AuthSettings) -> DashboardSettings:
    return DashboardSettings(
        postgres=postgres_settings,
        auth=auth_settings,
        log_json=False,
        clients={
            "viewer": ClientSettings(
                secret_hash=hash_secret("viewer-secret"), scopes=["sales:read"]
            ),
            "uploader": ClientSettings(
                secret_hash=hash_secret("uploader-secret"), scopes=["uploads:write"]
            ),
        },
    )


def grant(client_secret: str = "viewer-secret", **form: str) -> dict[str, str]:
    """A client-credentials token request of the `viewer` client."""
    return {
        "grant_type": "client_credentials",
        "client_id": "viewer",
        "client_secret": client_secret,
        **form,
    }


async def test_client_credentials_grant(settings: DashboardSettings, database: str) -> None:
    async with serve(create_app(settings)) as client:
        ok = await client.post("/oauth/token", data=grant())
        basic = base64.b64encode(b"viewer:viewer-secret").decode()
        ok_basic = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        wrong_secret = await client.post("/oauth/token", data=grant("nope"))
        wrong_grant = await client.post("/oauth/token", data=grant(grant_type="password"))
        too_much = await client.post("/oauth/token", data=grant(scope="sales:read admin"))
        summary = await client.get(
            "/api/v1/summary", headers={"Authorization": f"Bearer {ok.json()['access_token']}"}
        )
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "bearer"
    assert ok.json()["scope"] == "sales:read"
    assert ok_basic.status_code == 200
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    assert too_much.status_code == 400
    assert too_much.json()["error"] == "invalid_scope"
    assert summary.status_code == 200


async def test_summary_and_upload_detail_read_the_aggregates(
    settings: DashboardSettings, database: str
) -> None:
    upload = uuid.uuid4()
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "INSERT INTO uploads (upload_id, filename, status, rows_total, valid_count,"
            " rejected_count, valid_amount)"
            " VALUES ($1, 'sales.csv', 'processing', 2, 1, 1, 10.50)",
            upload,
        )
        await conn.execute("INSERT INTO product_totals VALUES ('Halal A', 10.50, 3, 1)")
        await conn.execute("INSERT INTO daily_totals VALUES ('2026-11-01', 10.50, 1)")
        await conn.execute("INSERT INTO rejection_totals (rejected_rows) VALUES (1)")
        await conn.execute("INSERT INTO rejection_rule_counts VALUES ('prefix', 1)")
        await conn.execute(
            "INSERT INTO rejections"
            " (event_id, upload_id, row_number, fields, violations, rejected_at)"
            " VALUES ('e2', $1, 2, $2::jsonb, $3::jsonb, now())",
            upload,
            '{"product": "Monitor"}',
            '[{"field": "product", "rule": "prefix", "message": "must start with Halal"}]',
        )
    finally:
        await conn.close()
    async with serve(create_app(settings)) as client:
        reader = bearer(settings.auth, "sales:read")
        summary = await client.get("/api/v1/summary", headers=reader)
        detail = await client.get(f"/api/v1/uploads/{upload}", headers=reader)
        missing = await client.get(f"/api/v1/uploads/{uuid.uuid4()}", headers=reader)
        no_token = await client.get("/api/v1/summary")
        wrong_scope = await client.get(
            "/api/v1/summary", headers=bearer(settings.auth, "uploads:write")
        )
        exported = await client.get(f"/api/v1/uploads/{upload}/rejections.csv", headers=reader)
        metrics = await client.get("/metrics")
        ready = await client.get("/readyz")
    assert summary.status_code == 200
    body = summary.json()
    assert (body["total_sales"], body["valid_count"], body["rejected_count"]) == ("10.50", 1, 1)
    assert body["products"] == [
        {"product": "Halal A", "total_amount": "10.50", "quantity": 3, "sales_count": 1}
    ]
    assert body["rejections_by_rule"] == {"prefix": 1}
    assert detail.json()["rejections"] == [
        {
            "row_number": 2,
            "fields": {"product": "Monitor"},
            "violations": [
                {"field": "product", "rule": "prefix", "message": "must start with Halal"}
            ],
        }
    ]
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[1] == "2,prefix,must start with Halal,Monitor,,,"
    assert missing.status_code == 404
    assert no_token.status_code == 401
    assert wrong_scope.status_code == 403
    assert 'http_requests_total{handler="/api/v1/summary"' in metrics.text
    assert ready.status_code == 200


async def test_readiness_fails_while_database_is_unreachable(auth_settings: AuthSettings) -> None:
    from pydantic import SecretStr

    unreachable = PostgresSettings(dsn=SecretStr("postgresql://sales:x@127.0.0.1:1/sales"))
    settings = DashboardSettings(postgres=unreachable, auth=auth_settings, log_json=False)
    async with serve(create_app(settings)) as client:
        ready = await client.get("/readyz")
        live = await client.get("/healthz")
    assert ready.status_code == 503
    assert "postgres" in ready.json()["failing"]
    assert live.status_code == 200
