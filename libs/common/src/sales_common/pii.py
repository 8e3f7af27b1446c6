"""Personal data: keyed pseudonymisation of customer ids, and their encryption in sales.raw.

Plain SHA-256 of an id is reversible by enumerating the id space; HMAC under a secret key
is not. The key id travels with every hash so keys can be rotated: the newest key hashes,
and erasure (docs/SECURITY.md) looks a customer up under every key still configured.

In sales.raw, the only topic that carries the id itself, ingest encrypts it (AES-256-GCM,
authenticated, bound to its upload and row) before it touches the spool or the broker; the
validator decrypts it, hashes it and drops it. Anyone reading the topic or the broker's
disk sees `pii:v1:<key id>:<nonce+ciphertext>`.
"""

from __future__ import annotations

import base64
import hashlib
import os

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
    """What a token is bound to: its upload and row."""
    return b"%s:%d" % (upload_id.encode(), row_number)


class UnreadableCustomerId(ValueError):
    """Not a token any configured key wrote (or altered on the way)."""


class FieldCipher:
    """Encrypts and decrypts one field value, bound to where it belongs (`context`, e.g.
    upload id and row number): a token moved to another row does not decrypt."""

    def __init__(self, settings: EncryptionSettings) -> None:
        self.key_id = settings.key_id
        self._current = _aes_key(settings.key)
        self._keys = {
            key_id: _aes_key(secret) for key_id, secret in settings.previous_keys.items()
        } | {settings.key_id: self._current}

    @staticmethod
    def is_token(value: str) -> bool:
        return value.startswith(_TOKEN_PREFIX)

    def encrypt(self, value: str, context: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.encrypt(nonce, value.encode(), context)
        return f"{_TOKEN_PREFIX}{self.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def reveal(self, fields: dict[str, str], upload_id: str, row_number: int) -> None:
        """Decrypt the row's customer id in place (a clear one, written before encryption
        was on, is left as it is)."""
        value = fields.get("customer_id")
        if value and value.startswith(_TOKEN_PREFIX):
            fields["customer_id"] = self.decrypt(value, row_context(upload_id, row_number))

    def decrypt(self, token: str, context: bytes) -> str:
        key_id, _, payload = token.removeprefix(_TOKEN_PREFIX).partition(":")
        key = self._keys.get(key_id)
        if key is None:
            raise UnreadableCustomerId(f"customer_id encrypted under unknown key {key_id!r}")
        try:
            sealed = base64.urlsafe_b64decode(payload)
            return key.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context).decode()
        except (InvalidTag, ValueError) as exc:
            raise UnreadableCustomerId("customer_id does not decrypt (altered or moved)") from exc
