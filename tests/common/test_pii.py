import hashlib
import hmac

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


def test_hash_is_standard_hmac_sha256_for_every_call() -> None:
    """Anyone holding the key can reproduce it; no state carries over between rows."""
    key = b"k" * 32
    hasher = CustomerHasher(PiiSettings(hmac_key=SecretStr(key.decode())))
    for customer_id in ("CUST-1", "CUST-2", "CUST-1", ""):
        expected = hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()
        assert hasher.hash(customer_id) == expected


@pytest.mark.parametrize("length", [32, 63, 64, 65, 200])
def test_hash_is_standard_hmac_sha256_for_keys_of_any_length(length: int) -> None:
    """Keys up to the block size (64 bytes) are padded, longer ones hashed first (RFC 2104);
    a key's text is taken as UTF-8."""
    key = ("é" + "k" * length)[:length]
    hasher = CustomerHasher(PiiSettings(hmac_key=SecretStr(key)))
    for customer_id in ("CUST-48213", "", "x" * 100, "Ünïcode"):
        expected = hmac.new(key.encode(), customer_id.encode(), hashlib.sha256).hexdigest()
        assert hasher.hash(customer_id) == expected


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        PiiSettings(hmac_key=SecretStr("short"))
