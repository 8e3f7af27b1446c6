"""Personal data: keyed pseudonymisation of customer ids, and their encryption in sales.raw.

Plain SHA-256 of an id is reversible by enumerating the id space; HMAC under a secret key
is not. The key id travels with every hash so keys can be rotated: the newest key hashes,
and erasure (docs/SECURITY.md) looks a customer up under every key still configured.

In sales.raw, the only topic that carries the id itself, ingest encrypts it (AES-256-GCM,
authenticated) before it touches the spool or the broker; the validator decrypts it, hashes
it and drops it. Anyone reading the topic or the broker's disk sees
`pii:v1:<key id>:<nonce+ciphertext>`. The ids of consecutive rows are sealed together, one
token bound to their upload, first row and count (`seal_ids`): a call per row cost ~3 us
to seal and ~3 us to open, mostly the library's per-call overhead (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, SecretStr, field_validator

from sales_common.settings import check_secret_length


def _check_keys(keys: dict[str, SecretStr], name: str) -> dict[str, SecretStr]:
    for key_id, secret in keys.items():
        check_secret_length(secret, f"{name}[{key_id}]")
    return keys


class PiiSettings(BaseModel):
    """Hashing keys: `hmac_key` (id `key_id`) hashes; `previous_hmac_keys` (id -> key), kept
    after a rotation, only find what older keys hashed (erasure)."""

    hmac_key: SecretStr
    key_id: str = "k1"
    previous_hmac_keys: dict[str, SecretStr] = {}

    _check_key = field_validator("hmac_key")(lambda v: check_secret_length(v, "pii.hmac_key"))
    _check_previous = field_validator("previous_hmac_keys")(
        lambda v: _check_keys(v, "pii.previous_hmac_keys")
    )

    def hashers(self) -> list[CustomerHasher]:
        """A hasher per configured key, the current one first."""
        previous = [
            PiiSettings(hmac_key=key, key_id=key_id)
            for key_id, key in self.previous_hmac_keys.items()
            if key_id != self.key_id
        ]
        return [CustomerHasher(self), *(CustomerHasher(p) for p in previous)]


# Every key byte XOR 0x36 (the inner pad) or XOR 0x5C (the outer pad): bytes.translate tables.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class CustomerHasher:
    """HMAC-SHA256 (RFC 2104) of a customer id: sha256(key ^ opad, sha256(key ^ ipad, id)).

    It runs for every row, so both inner states are keyed once and copied per id: the same
    digest as `hmac.new(key, id, sha256)` (tests/common/test_pii.py), without hmac.HMAC's
    Python wrapper, which cost more than the hashing (1.6 -> 0.9 us an id).
    """

    def __init__(self, settings: PiiSettings) -> None:
        self.key_id = settings.key_id
        key = settings.hmac_key.get_secret_value().encode()
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def hash(self, customer_id: str) -> str:
        inner = self._inner.copy()
        inner.update(customer_id.strip().encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


class EncryptionSettings(BaseModel):
    """Encryption keys for customer ids in sales.raw: `key` (id `key_id`) encrypts;
    `previous_keys` (id -> key), kept after a rotation, still decrypt what they encrypted
    until sales.raw's retention has removed it."""

    key: SecretStr
    key_id: str = "e1"
    previous_keys: dict[str, SecretStr] = {}

    _check_key = field_validator("key")(lambda v: check_secret_length(v, "pii_encryption.key"))
    _check_previous = field_validator("previous_keys")(
        lambda v: _check_keys(v, "pii_encryption.previous_keys")
    )


_TOKEN_PREFIX = "pii:v1:"  # noqa: S105 - a format marker, not a secret
_NONCE_BYTES = 12


def _aes_key(secret: SecretStr) -> AESGCM:
    """AES-256 from the configured secret (any text of 32 bytes or more) through HKDF."""
    material = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"sales.raw customer_id"
    ).derive(secret.get_secret_value().encode())
    return AESGCM(material)


def row_context(upload_id: str, row_number: int) -> bytes:
    """What a token of one row's id is bound to: its upload and row."""
    return b"%s:%d" % (upload_id.encode(), row_number)


def rows_context(upload_id: str, first_row: int, count: int) -> bytes:
    """What a token of consecutive rows' ids is bound to (never equal to a row_context)."""
    return b"%s:%d+%d" % (upload_id.encode(), first_row, count)


class UnreadableCustomerId(ValueError):
    """Not a token any configured key wrote (or altered on the way)."""


class FieldCipher:
    """Encrypts and decrypts customer ids, each token bound to where it belongs (`context`:
    the upload and the row, or the first row and count of a pack's ids): a token moved
    elsewhere does not decrypt."""

    def __init__(self, settings: EncryptionSettings) -> None:
        self.key_id = settings.key_id
        self._current = _aes_key(settings.key)
        self._keys = {
            key_id: _aes_key(secret) for key_id, secret in settings.previous_keys.items()
        } | {settings.key_id: self._current}

    def encrypt(self, value: str, context: bytes) -> str:
        return self._seal(value.encode(), context)

    def reveal(self, value: str, upload_id: str, row_number: int) -> str:
        """A customer id of a row written before packs: decrypted when it was sealed on its
        own, as it is when clear (written before encryption was on)."""
        if value.startswith(_TOKEN_PREFIX):
            return self.decrypt(value, row_context(upload_id, row_number))
        return value

    def decrypt(self, token: str, context: bytes) -> str:
        try:
            return self._open(token, context).decode()
        except UnicodeDecodeError as exc:
            raise UnreadableCustomerId("customer_id does not decrypt to text") from exc

    def seal_ids(self, ids: Sequence[str | None], upload_id: str, first_row: int) -> str:
        """One token for the ids of rows `first_row`.. of an upload (None: a row without
        one)."""
        return self._seal(orjson.dumps(ids), rows_context(upload_id, first_row, len(ids)))

    def open_ids(self, token: str, upload_id: str, first_row: int, count: int) -> list[str | None]:
        """The ids `seal_ids` sealed for these `count` rows; UnreadableCustomerId otherwise."""
        try:
            ids = orjson.loads(self._open(token, rows_context(upload_id, first_row, count)))
        except orjson.JSONDecodeError as exc:
            raise UnreadableCustomerId("sealed customer ids are not JSON") from exc
        if not (
            isinstance(ids, list)
            and len(ids) == count
            and all(i is None or isinstance(i, str) for i in ids)
        ):
            raise UnreadableCustomerId("sealed customer ids are not one per row")
        return ids

    def _seal(self, plain: bytes, context: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plain, context)
        return f"{_TOKEN_PREFIX}{self.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def _open(self, token: str, context: bytes) -> bytes:
        if not token.startswith(_TOKEN_PREFIX):
            raise UnreadableCustomerId("customer_id is not an encrypted token")
        key_id, _, payload = token.removeprefix(_TOKEN_PREFIX).partition(":")
        key = self._keys.get(key_id)
        if key is None:
            raise UnreadableCustomerId(f"customer_id encrypted under unknown key {key_id!r}")
        try:
            sealed = base64.urlsafe_b64decode(payload)
            return key.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context)
        except (InvalidTag, ValueError) as exc:
            raise UnreadableCustomerId("customer_id does not decrypt (altered or moved)") from exc
