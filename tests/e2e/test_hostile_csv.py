"""A corpus of hostile CSV files through the running pipeline: 0 server errors; every file is
either accepted with exactly the expected counts or refused with a 4xx naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from devstack import generate
from devstack.pipeline import RunningPipeline

from tests.conftest import REPO
from tests.reliability.checker import expected_from_csv

pytestmark = pytest.mark.e2e
CORPUS = REPO / "tests" / "hostile"
EXPECTED: dict[str, dict[str, object]] = json.loads((CORPUS / "expected.json").read_text())


def test_corpus_is_large_enough() -> None:
    assert len(EXPECTED) >= 25
    assert {p.name for p in CORPUS.glob("*.csv")} == set(EXPECTED)


def test_every_hostile_file(started: RunningPipeline, tmp_path: Path) -> None:
    token = started.token("uploader")
    accepted: dict[str, str] = {}
    outcomes: dict[str, str] = {}
    for name, expected in sorted(EXPECTED.items()):
        response = started.client.upload(CORPUS / name, token)
        assert response.status_code < 500, f"{name}: server error {response.text}"
        if expected["status"] == 202:
            assert response.status_code == 202, f"{name}: {response.status_code} {response.text}"
            assert response.json()["rows"] == expected["rows"], name
            accepted[name] = response.json()["upload_id"]
        else:
            assert response.status_code == expected["status"], f"{name}: {response.text}"
            detail = response.json()["detail"]
            assert str(expected["detail"]) in detail, f"{name}: {detail}"
        outcomes[name] = str(response.status_code)
    for name, upload_id in accepted.items():
        status = started.client.wait_complete(upload_id, token)
        counts = (status["rows_total"], status["valid_count"], status["rejected_count"])
        expected = EXPECTED[name]
        assert counts == (expected["rows"], expected["valid"], expected["rejected"]), name

    # A very large file, generated: accepted with exactly the counts the CSV implies.
    large = generate.write(tmp_path / "large.csv", 150_000, 0.1, seed=5)
    response = started.client.upload(large, token)
    assert response.status_code == 202
    status = started.client.wait_complete(response.json()["upload_id"], token, timeout_s=300)
    want = expected_from_csv(large)
    assert (status["rows_total"], status["valid_count"]) == (want.rows, want.valid)
