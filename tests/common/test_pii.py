import hashlib

import pytest
from pydantic import SecretStr, ValidationError
from sales_common.pii import CustomerHasher, PiiSettings


def test_hash_is_keyed_hmac_not_plain_sha256() -> None:
    hasher = CustomerHasher(PiiSettings(hmac_key=SecretStr("k" * 32), key_id="k1"))
    digest = hasher.hash("CUST-48213")
    assert len(digest) == 64
    assert digest != hashlib.sha256(b"CUST-48213").hexdigest()
    assert digest == hasher.hash(" CUST-48213 ")
    other = CustomerHasher(PiiSettings(hmac_key=SecretStr("z" * 32), key_id="k2"))
    assert other.hash("CUST-48213") != digest


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        PiiSettings(hmac_key=SecretStr("short"))
