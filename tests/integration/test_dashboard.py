"""dashboard against the real database: OAuth2 client credentials and the read API."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from dashboard.config import ClientSettings, DashboardSettings
from dashboard.main import create_app
from dashboard.periods import Period
from dashboard.repository import DashboardRepository
from dashboard.service import SummaryQuery, read_summary
from loader.repository import LoaderRepository, SaleRow, sale_row
from sales_common.auth import hash_secret
from sales_common.codec import decode_validated
from sales_common.db import Connection, Pool, close_pool, create_pool, register_json_codecs
from sales_common.events import ValidatedSale, encode, event_id_for
from sales_common.pii import PiiSettings
from sales_common.settings import AuthSettings, PostgresSettings

from tests.helpers import bearer, serve

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(
    postgres_settings: PostgresSettings, auth_settings: AuthSettings, pii_settings: PiiSettings
) -> DashboardSettings:
    return DashboardSettings(
        postgres=postgres_settings,
        auth=auth_settings,
        pii=pii_settings,
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
        await conn.execute(
            "INSERT INTO daily_product_folded VALUES ('2026-11-01', 'Halal A', 10.50, 3, 1)"
        )
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
    assert (body["period"], body["other"], body["previous"]) == (
        {"from": None, "to": None, "days": None},
        None,
        None,
    )
    assert body["daily"] == [{"day": "2026-11-01", "total_amount": "10.50", "sales_count": 1}]
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


async def test_readiness_fails_while_database_is_unreachable(
    auth_settings: AuthSettings, pii_settings: PiiSettings
) -> None:
    from pydantic import SecretStr

    unreachable = PostgresSettings(dsn=SecretStr("postgresql://sales:x@127.0.0.1:1/sales"))
    settings = DashboardSettings(
        postgres=unreachable, auth=auth_settings, pii=pii_settings, log_json=False
    )
    async with serve(create_app(settings)) as client:
        ready = await client.get("/readyz")
        live = await client.get("/healthz")
    assert ready.status_code == 503
    assert "postgres" in ready.json()["failing"]
    assert live.status_code == 200


# --- ranges of days, against the rows themselves ---------------------------------------------

START = date(2026, 3, 1)
# What a range's figures must equal: the stored rows themselves, by their day in UTC.
DIRECT = """
SELECT coalesce(sum(amount), 0) AS total_sales, count(*) AS valid_count,
       count(DISTINCT product) AS product_count
FROM sales WHERE coalesce(sale_date, (validated_at AT TIME ZONE 'UTC')::date) BETWEEN $1 AND $2
"""
DIRECT_PRODUCTS = """
SELECT product, sum(amount) AS total_amount, sum(quantity) AS quantity, count(*) AS sales_count
FROM sales WHERE coalesce(sale_date, (validated_at AT TIME ZONE 'UTC')::date) BETWEEN $1 AND $2
GROUP BY product ORDER BY total_amount DESC, product
"""


async def direct_totals(db: Pool | Connection, start: date, end: date) -> asyncpg.Record:
    row = await db.fetchrow(DIRECT, start, end)
    assert row is not None  # an aggregate without GROUP BY answers one row
    return row


def sales(upload: str, first_row: int, count: int) -> list[SaleRow]:
    """`count` sales over 20 days from START and 13 products, some undated."""
    rows = []
    for n in range(first_row, first_row + count):
        price = Decimal(n * 7919 % 100_000) / 100 + 1
        quantity = n % 9 + 1
        rows.append(
            sale_row(
                decode_validated(
                    encode(
                        ValidatedSale(
                            event_id=event_id_for(upload, n, None),
                            upload_id=upload,
                            row_number=n,
                            product=f"Halal {n * 31 % 13:02d}",
                            price=price,
                            quantity=quantity,
                            amount=price * quantity,
                            sale_date=None if n % 10 == 0 else START + timedelta(days=n % 20),
                            validated_at=datetime(2026, 3, 5, 23, 59, tzinfo=UTC),
                        )
                    )
                )
            )
        )
    return rows


async def load(pool: Pool, batches: int, size: int = 200) -> None:
    """Batches as the loader stores them: rows and aggregates in one transaction each."""
    repo = LoaderRepository(pool, "loader")
    upload = str(uuid.uuid4())
    for b in range(batches):
        async with repo.transaction({upload}) as tx:
            await repo.store_sales(tx, sales(upload, b * size + 1, size))


RANGES = [
    (None, None),  # all time
    (START, START),  # one day
    (START + timedelta(days=4), START + timedelta(days=4)),  # the undated sales' day, and more
    (START + timedelta(days=3), START + timedelta(days=9)),
    (START, START + timedelta(days=19)),
    (date(2025, 1, 1), date(2025, 12, 31)),  # empty
    (START + timedelta(days=15), None),  # open ends
    (None, START + timedelta(days=2)),
]


def query_string(start: date | None, end: date | None, **more: object) -> str:
    params = {"from": start, "to": end, **more}
    return "&".join(f"{k}={v}" for k, v in params.items() if v is not None)


@pytest.fixture
def uncached(settings: DashboardSettings) -> DashboardSettings:
    return settings.model_copy(update={"summary_cache_s": 0.0, "top_products": 4})


async def test_range_figures_equal_a_sum_over_sales(
    uncached: DashboardSettings, postgres_settings: PostgresSettings
) -> None:
    pool = await create_pool(postgres_settings, init=register_json_codecs)
    try:
        await load(pool, batches=3)
        reader = bearer(uncached.auth, "sales:read")
        async with serve(create_app(uncached)) as client:
            for start, end in RANGES:
                lo, hi = start or date.min, end or date.max
                direct = await direct_totals(pool, lo, hi)
                products = [dict(r) for r in await pool.fetch(DIRECT_PRODUCTS, lo, hi)]
                response = await client.get(
                    f"/api/v1/summary?{query_string(start, end)}", headers=reader
                )
                listed = await client.get(
                    f"/api/v1/products?{query_string(start, end, limit=1000)}", headers=reader
                )
                assert response.status_code == 200, response.text
                body = response.json()
                what = f"{start}..{end}"
                assert body["period"]["from"] == (str(start) if start else None), what
                assert body["period"]["to"] == (str(end) if end else None), what
                assert Decimal(body["total_sales"]) == direct["total_sales"], what
                assert body["valid_count"] == direct["valid_count"], what
                assert body["product_count"] == direct["product_count"], what
                top = [{**p, "total_amount": Decimal(p["total_amount"])} for p in body["products"]]
                assert top == products[:4], what
                rest = products[4:]
                if rest:
                    assert body["other"]["product_count"] == len(rest), what
                    assert Decimal(body["other"]["total_amount"]) == sum(
                        p["total_amount"] for p in rest
                    ), what
                else:
                    assert body["other"] is None, what
                # Every day of the data is within the series' 31 days: it sums to the total.
                daily = sum(Decimal(d["total_amount"]) for d in body["daily"])
                assert daily == direct["total_sales"], what
                items = [
                    {**p, "total_amount": Decimal(p["total_amount"])}
                    for p in listed.json()["items"]
                ]
                assert items == products, what
                if start and end:
                    length = (end - start).days + 1
                    before = await direct_totals(
                        pool, start - timedelta(days=length), start - timedelta(days=1)
                    )
                    assert Decimal(body["previous"]["total_sales"]) == before["total_sales"], what
                    assert body["previous"]["valid_count"] == before["valid_count"], what
                    assert body["previous"]["period"]["days"] == length, what
                else:
                    assert body["previous"] is None, what
    finally:
        await close_pool(pool)


async def test_range_figures_match_the_rows_while_a_load_runs(
    postgres_settings: PostgresSettings,
) -> None:
    """The aggregates move in the rows' own transactions: read in one snapshot, mid-load, the
    dashboard's figures and a SUM over sales agree for every range, never a batch apart."""
    pool = await create_pool(postgres_settings, init=register_json_codecs)
    loading = asyncio.create_task(load(pool, batches=40, size=100))
    checks = partial = 0
    try:
        async with pool.acquire() as conn:
            while not loading.done() or checks == 0:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    # The dashboard's own reads, on this snapshot's connection.
                    repo = DashboardRepository(conn)  # type: ignore[arg-type]
                    stored = await conn.fetchval("SELECT count(*) FROM sales")
                    for start, end in RANGES:
                        period = Period(from_=start, to=end)
                        summary = await read_summary(repo, SummaryQuery(period, 4, None))
                        direct = await direct_totals(conn, *period.bounds())
                        assert (summary.total_sales, summary.valid_count) == (
                            direct["total_sales"],
                            direct["valid_count"],
                        ), f"{start}..{end} with {stored} rows stored"
                checks += 1
                partial += 0 < stored < 4000
        await loading
    finally:
        loading.cancel()
        await close_pool(pool)
    assert partial > 0, "no snapshot fell between the first and the last batch"


async def test_bad_ranges_and_cursors_are_refused_and_every_route_needs_the_scope(
    settings: DashboardSettings, database: str
) -> None:
    reader = bearer(settings.auth, "sales:read")
    uploader = bearer(settings.auth, "uploads:write")
    routes = [
        "/api/v1/summary",
        "/api/v1/products",
        "/api/v1/products.csv",
        "/api/v1/uploads",
        f"/api/v1/uploads/{uuid.uuid4()}/rejections",
    ]
    async with serve(create_app(settings)) as client:
        reversed_ = await client.get(
            "/api/v1/summary?from=2026-03-02&to=2026-03-01", headers=reader
        )
        malformed = await client.get("/api/v1/summary?from=2026-02-30", headers=reader)
        products_reversed = await client.get(
            "/api/v1/products?from=2026-03-02&to=2026-03-01", headers=reader
        )
        one_day = await client.get("/api/v1/summary?from=2026-03-01&to=2026-03-01", headers=reader)
        cursors = [
            (await client.get(f"/api/v1/uploads?cursor={c}", headers=reader)).status_code
            for c in ("nope", "W10", "WyJ4IiwieSJd", "%C3%A9")
        ]
        anonymous = [(await client.get(route)).status_code for route in routes]
        wrong_scope = [(await client.get(route, headers=uploader)).status_code for route in routes]
    assert reversed_.status_code == 422
    assert reversed_.json()["error"] == "invalid_request"
    assert "'to' is before 'from'" in reversed_.text
    assert malformed.status_code == 422
    assert products_reversed.status_code == 422
    assert one_day.json()["period"] == {"from": "2026-03-01", "to": "2026-03-01", "days": 1}
    assert one_day.json()["previous"]["period"]["from"] == "2026-02-28"
    assert cursors == [422] * 4
    assert anonymous == [401] * len(routes)
    assert wrong_scope == [403] * len(routes)


async def test_uploads_and_rejections_are_paged_without_gaps_or_repeats(
    settings: DashboardSettings, database: str
) -> None:
    conn = await asyncpg.connect(database)
    same_moment = datetime(2026, 3, 1, 12, tzinfo=UTC)
    uploads = [uuid.uuid4() for _ in range(7)]
    try:
        for n, upload in enumerate(uploads):
            await conn.execute(
                "INSERT INTO uploads (upload_id, filename, status, created_at)"
                " VALUES ($1, $2, 'processing', $3)",
                upload,
                f"f{n}.csv",
                same_moment if n < 4 else same_moment + timedelta(minutes=n),
            )
        await conn.executemany(
            "INSERT INTO rejections"
            " (event_id, upload_id, row_number, fields, violations, rejected_at)"
            " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, now())",
            [
                (
                    f"e{row}",
                    uploads[0],
                    row,
                    '{"product": "Monitor", "customer_id": "hmac:ab"}',
                    '[{"field": "product", "rule": "prefix", "message": "must start with Halal"}]',
                )
                for row in range(1, 8)
            ],
        )
    finally:
        await conn.close()
    reader = bearer(settings.auth, "sales:read")
    async with serve(create_app(settings)) as client:

        async def every_page(path: str) -> tuple[list[dict[str, object]], int]:
            items: list[dict[str, object]] = []
            pages, cursor = 0, None
            while True:
                query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
                page = (await client.get(path + query, headers=reader)).json()
                items += page["items"]
                pages += 1
                cursor = page["next_cursor"]
                if cursor is None:
                    return items, pages

        listed, upload_pages = await every_page("/api/v1/uploads")
        rejected, rejection_pages = await every_page(f"/api/v1/uploads/{uploads[0]}/rejections")
        missing = await client.get(f"/api/v1/uploads/{uuid.uuid4()}/rejections", headers=reader)
    assert upload_pages == 3
    assert [u["filename"] for u in listed[:3]] == ["f6.csv", "f5.csv", "f4.csv"]
    assert sorted(str(u["upload_id"]) for u in listed) == sorted(str(u) for u in uploads)
    assert rejection_pages == 3
    assert [r["row_number"] for r in rejected] == list(range(1, 8))
    assert rejected[0]["violations"] == [
        {"field": "product", "rule": "prefix", "message": "must start with Halal"}
    ]
    assert missing.status_code == 404


async def test_products_are_sorted_paged_and_exported(
    uncached: DashboardSettings, postgres_settings: PostgresSettings
) -> None:
    pool = await create_pool(postgres_settings, init=register_json_codecs)
    try:
        await load(pool, batches=1)
        everything = [dict(r) for r in await pool.fetch(DIRECT_PRODUCTS, date.min, date.max)]
    finally:
        await close_pool(pool)
    reader = bearer(uncached.auth, "sales:read")
    async with serve(create_app(uncached)) as client:
        first = (await client.get("/api/v1/products?limit=5", headers=reader)).json()
        last = (await client.get("/api/v1/products?limit=5&offset=10", headers=reader)).json()
        by_name = (
            await client.get("/api/v1/products?sort=product&order=asc&limit=3", headers=reader)
        ).json()
        exported = await client.get("/api/v1/products.csv?sort=quantity&order=asc", headers=reader)
    assert first["product_count"] == 13
    assert first["next_offset"] == 5
    assert [p["product"] for p in first["items"]] == [p["product"] for p in everything[:5]]
    assert last["next_offset"] is None
    assert [p["product"] for p in last["items"]] == [p["product"] for p in everything[10:]]
    assert [p["product"] for p in by_name["items"]] == ["Halal 00", "Halal 01", "Halal 02"]
    lines = exported.text.splitlines()
    assert lines[0] == "product,total_amount,quantity,sales_count"
    quantities = [int(line.split(",")[-2]) for line in lines[1:]]
    assert len(quantities) == 13
    assert quantities == sorted(quantities)
