"""What arrives on the wire, checked as it arrives: idle time, size, Content-Length and
Content-Digest / Repr-Digest (RFC 9530).

`MeteredReceive` wraps the ASGI `receive` callable, so the same checks hold for a plain
text/csv body and for a multipart form (which Starlette reads through `receive` too).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sales_common.errors import ApiError
from starlette.types import Message, Receive

_ALGORITHMS: dict[str, Callable[[], Any]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
DIGEST_HEADERS = ("content-digest", "repr-digest")


class PayloadTooLarge(ApiError):
    status_code = 413
    error = "payload_too_large"


class BadDigestHeader(ApiError):
    status_code = 400
    error = "bad_digest_header"


class TransferFailed(ApiError):
    """The body did not arrive as sent: the upload fails, and a retry with the same
    Idempotency-Key takes it over."""


class RequestTimeout(TransferFailed):
    status_code = 408
    error = "request_timeout"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class BodyMismatch(TransferFailed):
    status_code = 400
    error = "body_mismatch"


class BodyIncomplete(TransferFailed):
    status_code = 400
    error = "incomplete_body"


def parse_digests(header: str, value: str) -> dict[str, bytes]:
    """An RFC 9530 digest dictionary (`sha-256=:<base64>:, ...`): algorithm -> digest.

    Algorithms we do not know are ignored, as the RFC allows; a header with none we know
    is refused, since the client asked for a check we cannot make.
    """
    digests: dict[str, bytes] = {}
    for member in value.split(","):
        name, sep, item = member.strip().partition("=")
        item = item.split(";", 1)[0].strip()  # structured-field parameters carry nothing here
        if not sep or len(item) < 2 or item[0] != ":" or item[-1] != ":":
            raise BadDigestHeader(f"{header} is not an RFC 9530 digest: {member.strip()[:80]!r}")
        try:
            digest = base64.b64decode(item[1:-1], validate=True)
        except binascii.Error:
            raise BadDigestHeader(f"{header}: {name} is not base64") from None
        if name.strip().lower() in _ALGORITHMS:
            digests[name.strip().lower()] = digest
    if not digests:
        raise BadDigestHeader(f"{header} names no supported algorithm ({', '.join(_ALGORITHMS)})")
    return digests


def _b64(digest: bytes) -> str:
    return f":{base64.b64encode(digest).decode()}:"


@dataclass
class ExpectedBody:
    """What the client's headers promise about the body."""

    length: int | None = None
    digests: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (header, alg)

    @classmethod
    def from_headers(cls, headers: Any) -> ExpectedBody:
        declared = headers.get("content-length")
        expected = cls(length=int(declared) if declared and declared.isdigit() else None)
        for header in DIGEST_HEADERS:
            if value := headers.get(header):
                for algorithm, digest in parse_digests(header, value).items():
                    expected.digests[(header, algorithm)] = digest
        return expected


class MeteredReceive:
    """An ASGI `receive` that enforces an idle timeout and a size limit, and hashes and
    counts the body for `verify()`."""

    def __init__(
        self, receive: Receive, expected: ExpectedBody, idle_timeout_s: float, max_bytes: int
    ) -> None:
        self._receive = receive
        self._expected = expected
        self._idle_timeout_s = idle_timeout_s
        self._max_bytes = max_bytes
        self._hashers = {alg: _ALGORITHMS[alg]() for _, alg in expected.digests}
        self.received = 0

    def _so_far(self) -> str:
        of = f" of the {self._expected.length} declared" if self._expected.length else ""
        return f"{self.received} bytes{of}"

    async def __call__(self) -> Message:
        try:
            async with asyncio.timeout(self._idle_timeout_s):
                message = await self._receive()
        except TimeoutError:
            raise RequestTimeout(
                f"no data for {self._idle_timeout_s:g} s after {self._so_far()}: upload abandoned"
            ) from None
        if message["type"] == "http.disconnect":
            raise BodyIncomplete(f"the client disconnected after {self._so_far()}")
        body: bytes = message.get("body", b"")
        self.received += len(body)
        if self.received > self._max_bytes:
            raise PayloadTooLarge(f"the upload exceeds the limit of {self._max_bytes} bytes")
        for hasher in self._hashers.values():
            hasher.update(body)
        return message

    def verify(self) -> None:
        """After the last byte: the body is what the headers said it would be."""
        length = self._expected.length
        if length is not None and self.received != length:
            raise BodyMismatch(f"Content-Length says {length} bytes, the body had {self.received}")
        for (header, algorithm), expected in self._expected.digests.items():
            actual = self._hashers[algorithm].digest()
            if actual != expected:
                raise BodyMismatch(
                    f"{header} {algorithm} does not match the body: the header says"
                    f" {_b64(expected)}, the body hashes to {_b64(actual)}"
                )

    async def checked(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`chunks`, then `verify()` once they are exhausted."""
        async for chunk in chunks:
            yield chunk
        self.verify()
