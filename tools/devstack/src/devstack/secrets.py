"""Secrets of the local stack: generated once, kept in .stack/secrets.json (git-ignored, 0600)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sales_common.auth import SCOPE_ADMIN, SCOPE_SALES_READ, SCOPE_UPLOADS_WRITE, hash_secret

# The local stack's OAuth clients: a program that uploads, one that reads, an operator.
CLIENT_SCOPES = {
    "uploader": [SCOPE_UPLOADS_WRITE],
    "viewer": [SCOPE_SALES_READ],
    "operator": [SCOPE_UPLOADS_WRITE, SCOPE_SALES_READ, SCOPE_ADMIN],
}


USERS = ("alice",)


@dataclass(frozen=True)
class StackSecrets:
    jwt_secret: str
    pii_hmac_key: str
    postgres_password: str
    client_secrets: dict[str, str]
    client_secret_hashes: dict[str, str]
    # Encrypts customer ids in sales.raw; "" in a file written before it existed (filled in
    # and saved by load_or_create).
    pii_encryption_key: str = ""
    # People who log in to the dashboard page.
    user_passwords: dict[str, str] = field(default_factory=dict)
    user_password_hashes: dict[str, str] = field(default_factory=dict)

    def users_json(self) -> str:
        return json.dumps(
            {
                user: {"password_hash": hashed, "scopes": [SCOPE_SALES_READ]}
                for user, hashed in self.user_password_hashes.items()
            }
        )

    def clients_json(self) -> str:
        return json.dumps(
            {
                client: {"secret_hash": self.client_secret_hashes[client], "scopes": scopes}
                for client, scopes in CLIENT_SCOPES.items()
            }
        )


def generate() -> StackSecrets:
    client_secrets = {client: secrets.token_urlsafe(24) for client in CLIENT_SCOPES}
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    return StackSecrets(
        jwt_secret=secrets.token_urlsafe(48),
        pii_hmac_key=secrets.token_urlsafe(48),
        pii_encryption_key=secrets.token_urlsafe(48),
        postgres_password=secrets.token_urlsafe(18),
        client_secrets=client_secrets,
        client_secret_hashes={c: hash_secret(s) for c, s in client_secrets.items()},
        user_passwords=passwords,
        user_password_hashes={u: hash_secret(p) for u, p in passwords.items()},
    )


def load_or_create(path: Path) -> StackSecrets:
    if path.exists():
        loaded = StackSecrets(**json.loads(path.read_text()))
        if loaded.pii_encryption_key:
            return loaded
        # Written before customer ids were encrypted: add the key, keep everything else.
        loaded = replace(loaded, pii_encryption_key=secrets.token_urlsafe(48))
        path.unlink()
        _save(path, loaded)
        return loaded
    created = generate()
    _save(path, created)
    return created


def _save(path: Path, stack_secrets: StackSecrets) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(stack_secrets), handle, indent=2)
