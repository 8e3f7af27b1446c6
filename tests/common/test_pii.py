import hashlib
import hmac

import pytest
from pydantic import SecretStr, ValidationError
from sales_common.pii import (
    CustomerHasher,
    EncryptionSettings,
    FieldCipher,
    PiiSettings,
    UnreadableCustomerId,
    row_context,
    rows_context,
)


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


def cipher(key: str = "a" * 32, key_id: str = "e1", **previous: str) -> FieldCipher:
    return FieldCipher(
        EncryptionSettings(
            key=SecretStr(key),
            key_id=key_id,
            previous_keys={k: SecretStr(v) for k, v in previous.items()},
        )
    )


def test_a_token_decrypts_only_in_its_own_row() -> None:
    old = cipher()
    token = old.encrypt("CUST-1", row_context("u", 1))
    assert token.startswith("pii:v1:e1:")
    assert "CUST-1" not in token
    assert old.encrypt("CUST-1", row_context("u", 1)) != token  # a fresh nonce each time
    assert old.decrypt(token, row_context("u", 1)) == "CUST-1"
    for moved in (row_context("u", 2), row_context("v", 1)):
        with pytest.raises(UnreadableCustomerId):
            old.decrypt(token, moved)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(UnreadableCustomerId):
        old.decrypt(tampered, row_context("u", 1))


def test_after_a_rotation_the_new_key_encrypts_and_the_old_one_still_decrypts() -> None:
    before = cipher()
    token = before.encrypt("CUST-1", row_context("u", 1))
    after = cipher("b" * 32, "e2", e1="a" * 32)
    assert after.encrypt("CUST-1", row_context("u", 1)).startswith("pii:v1:e2:")
    assert after.decrypt(token, row_context("u", 1)) == "CUST-1"
    with pytest.raises(UnreadableCustomerId, match="unknown key 'e1'"):
        cipher("b" * 32, "e2").decrypt(token, row_context("u", 1))


def test_the_ids_of_consecutive_rows_open_only_for_those_rows() -> None:
    c = cipher()
    ids = ["CUST-1", None, " "]
    token = c.seal_ids(ids, "u", 7)
    assert token.startswith("pii:v1:e1:")
    assert "CUST-1" not in token
    assert c.open_ids(token, "u", 7, 3) == ["CUST-1", None, " "]
    # Moved to another upload or rows, cut short or lengthened: it does not open.
    for upload, first, count in (("v", 7, 3), ("u", 8, 3), ("u", 7, 2), ("u", 7, 4)):
        with pytest.raises(UnreadableCustomerId):
            c.open_ids(token, upload, first, count)
    with pytest.raises(UnreadableCustomerId):  # nor does one row's token
        c.open_ids(c.encrypt("CUST-1", row_context("u", 7)), "u", 7, 1)
    after = cipher("b" * 32, "e2", e1="a" * 32)
    assert after.open_ids(token, "u", 7, 3) == ["CUST-1", None, " "]


def test_sealed_ids_that_are_not_one_text_per_row_are_refused() -> None:
    c = cipher()
    for plain in ('{"a": 1}', "[1, 2]", "not json"):
        token = c.encrypt(plain, rows_context("u", 1, 2))
        with pytest.raises(UnreadableCustomerId):
            c.open_ids(token, "u", 1, 2)


def test_reveal_decrypts_a_rows_own_token_and_leaves_clear_ids_alone() -> None:
    c = cipher()
    assert c.reveal(c.encrypt("CUST-9", row_context("u", 3)), "u", 3) == "CUST-9"
    assert c.reveal("CUST-9", "u", 3) == "CUST-9"
    with pytest.raises(UnreadableCustomerId):
        c.reveal(c.encrypt("CUST-9", row_context("u", 3)), "u", 4)


def test_every_configured_hashing_key_is_offered_the_current_first() -> None:
    settings = PiiSettings(
        hmac_key=SecretStr("n" * 32), key_id="k2", previous_hmac_keys={"k1": SecretStr("o" * 32)}
    )
    assert [h.key_id for h in settings.hashers()] == ["k2", "k1"]
    with pytest.raises(ValidationError):
        PiiSettings(hmac_key=SecretStr("n" * 32), previous_hmac_keys={"k1": SecretStr("short")})
