import time

import pytest
from jose import jwt
from pydantic import SecretStr, ValidationError
from sales_common.auth import TokenIssuer, TokenVerifier, hash_secret, verify_secret
from sales_common.errors import Unauthorized
from sales_common.settings import AuthSettings

SECRET = "s" * 40
SETTINGS = AuthSettings(jwt_secret=SecretStr(SECRET))


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "c",
        "scope": "sales:read",
        "iss": SETTINGS.issuer,
        "aud": SETTINGS.audience,
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_issued_token_verifies_with_scopes() -> None:
    token = TokenIssuer(SETTINGS).issue("uploader", ["uploads:write", "sales:read"])
    principal = TokenVerifier(SETTINGS).verify(token)
    assert principal.subject == "uploader"
    assert principal.scopes == {"uploads:write", "sales:read"}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (_claims(exp=int(time.time()) - 3600), "expired"),
        (_claims(exp=None), "missing exp"),
        (_claims(iss="someone-else"), "wrong iss"),
        (_claims(aud="other-api"), "wrong aud"),
        (_claims(aud=None), "missing aud"),
    ],
)
def test_claims_are_enforced(claims: dict[str, object], reason: str) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        TokenVerifier(SETTINGS).verify(token)


def test_algorithm_is_pinned() -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS512")
    with pytest.raises(Unauthorized):
        TokenVerifier(SETTINGS).verify(token)


def test_alg_none_is_refused() -> None:
    header = jwt.encode(_claims(), SECRET, algorithm="HS256").split(".")[1]
    unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + header + "."
    with pytest.raises(Unauthorized):
        TokenVerifier(SETTINGS).verify(unsigned)


def test_wrong_key_and_tampering_are_refused() -> None:
    forged = jwt.encode(_claims(), "f" * 40, algorithm="HS256")
    with pytest.raises(Unauthorized):
        TokenVerifier(SETTINGS).verify(forged)
    head, payload, signature = TokenIssuer(SETTINGS).issue("c", ["sales:read"]).split(".")
    tampered_signature = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    with pytest.raises(Unauthorized):
        TokenVerifier(SETTINGS).verify(f"{head}.{payload}.{tampered_signature}")


def test_oversized_token_is_refused_before_parsing() -> None:
    with pytest.raises(Unauthorized, match="too large"):
        TokenVerifier(SETTINGS).verify("a" * 9000)


def test_signing_key_under_32_bytes_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        AuthSettings(jwt_secret=SecretStr("too-short"))


def test_client_secret_hashes_are_argon2id() -> None:
    hashed = hash_secret("correct horse")
    assert hashed.startswith("$argon2id$")
    assert verify_secret("correct horse", hashed)
    assert not verify_secret("wrong", hashed)
