"""Body checks as the bytes arrive: digests, length, idle timeout, size (pure ASGI, no server)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator

import pytest
from ingest.body import (
    BadDigestHeader,
    BodyIncomplete,
    BodyMismatch,
    ExpectedBody,
    MeteredReceive,
    PayloadTooLarge,
    RequestTimeout,
    parse_digests,
)
from starlette.types import Message, Receive

BODY = b"product,price,quantity\nHalal Chicken,2.50,3\n"


def sha256_header(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def receive_of(*chunks: bytes, then: Message | None = None, more: bool = False) -> Receive:
    """An ASGI receive: `chunks`, then `then`; with `more`, the last chunk promises more
    body that never comes (a stalled client)."""
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": more or i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    if then is not None:
        messages[-1]["more_body"] = True
        messages.append(then)

    async def receive() -> Message:
        if not messages:
            await asyncio.Event().wait()  # a client that sends nothing more
        return messages.pop(0)

    return receive


async def drain(meter: MeteredReceive) -> bytes:
    async def chunks() -> AsyncIterator[bytes]:
        while True:
            message = await meter()
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return

    return b"".join([chunk async for chunk in meter.checked(chunks())])


def test_parse_digests_reads_the_rfc_9530_dictionary() -> None:
    header = f"{sha256_header(BODY)}, md5=:AAAA:, sha-512=:{base64.b64encode(b'x' * 64).decode()}:"
    digests = parse_digests("content-digest", header)
    assert digests == {"sha-256": hashlib.sha256(BODY).digest(), "sha-512": b"x" * 64}


@pytest.mark.parametrize(
    "value",
    ["sha-256=abc", "sha-256=:not base64!:", "md5=:AAAA:", "sha-256"],
)
def test_malformed_or_unsupported_digest_headers_are_refused(value: str) -> None:
    with pytest.raises(BadDigestHeader):
        parse_digests("content-digest", value)


async def test_a_matching_body_passes_with_both_headers() -> None:
    expected = ExpectedBody.from_headers(
        {
            "content-length": str(len(BODY)),
            "content-digest": sha256_header(BODY),
            "repr-digest": sha256_header(BODY),
        }
    )
    meter = MeteredReceive(receive_of(BODY[:10], BODY[10:]), expected, 5, 1 << 20)
    assert await drain(meter) == BODY
    assert meter.received == len(BODY)


async def test_a_body_that_differs_from_its_digest_is_refused_naming_both() -> None:
    expected = ExpectedBody.from_headers({"content-digest": sha256_header(BODY)})
    cut = BODY[:-5] + b"\n"
    meter = MeteredReceive(receive_of(cut), expected, 5, 1 << 20)
    with pytest.raises(BodyMismatch) as refused:
        await drain(meter)
    assert "content-digest sha-256 does not match" in str(refused.value.detail)
    assert sha256_header(BODY).split("=", 1)[1] in str(refused.value.detail)


async def test_a_body_shorter_than_its_content_length_is_refused() -> None:
    expected = ExpectedBody(length=len(BODY) + 7)
    meter = MeteredReceive(receive_of(BODY), expected, 5, 1 << 20)
    with pytest.raises(BodyMismatch, match=f"says {len(BODY) + 7} bytes, the body had {len(BODY)}"):
        await drain(meter)


async def test_a_client_that_disconnects_is_reported_with_the_bytes_received() -> None:
    expected = ExpectedBody(length=1000)
    receive = receive_of(BODY, then={"type": "http.disconnect"})
    meter = MeteredReceive(receive, expected, 5, 1 << 20)
    with pytest.raises(BodyIncomplete, match=f"after {len(BODY)} bytes of the 1000 declared"):
        await drain(meter)


async def test_a_stalled_body_times_out_with_408() -> None:
    meter = MeteredReceive(receive_of(BODY, more=True), ExpectedBody(), 0.05, 1 << 20)
    first = await meter()
    assert first["body"] == BODY
    with pytest.raises(RequestTimeout) as timed_out:
        await meter()
    assert timed_out.value.status_code == 408
    assert "no data for 0.05 s" in str(timed_out.value.detail)


async def test_the_size_limit_counts_every_byte() -> None:
    meter = MeteredReceive(receive_of(BODY, BODY), ExpectedBody(), 5, len(BODY) + 1)
    with pytest.raises(PayloadTooLarge):
        await drain(meter)
