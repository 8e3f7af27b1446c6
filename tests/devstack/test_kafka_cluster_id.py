"""The cluster id devstack formats the broker's storage with."""

from __future__ import annotations

import string
import uuid

import pytest
from devstack import kafka


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" as the first base64url character: StorageTool would take it for an option.
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))
    assert kafka.cluster_id() == "AQEBAQEBAQEBAQEBAQEBAQ"


def test_ids_are_22_characters_of_base64url() -> None:
    ids = {kafka.cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(id_) == 22 and not id_.startswith("-") for id_ in ids)
    assert set("".join(ids)) <= set(string.ascii_letters + string.digits + "-_")
