"""Keyed pseudonymisation of customer ids.

Plain SHA-256 of an id is reversible by enumerating the id space; HMAC under a secret key
is not. The key id travels with every hash so keys can be rotated.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import BaseModel, SecretStr, field_validator

from sales_common.settings import check_secret_length


class PiiSettings(BaseModel):
    hmac_key: SecretStr
    key_id: str = "k1"

    _check_key = field_validator("hmac_key")(lambda v: check_secret_length(v, "pii.hmac_key"))


class CustomerHasher:
    def __init__(self, settings: PiiSettings) -> None:
        self.key_id = settings.key_id
        # Keyed once: copying a keyed HMAC skips re-deriving the pads for every row.
        self._keyed = hmac.new(settings.hmac_key.get_secret_value().encode(), b"", hashlib.sha256)

    def hash(self, customer_id: str) -> str:
        mac = self._keyed.copy()
        mac.update(customer_id.strip().encode())
        return mac.hexdigest()
