"""The per-row hot path of the validator and the loader, this tree against a git revision, in
one process, back to back: `uv run python -m bench.hot_path --rows 200000 --base 0703696`.

The revision's own code is loaded from git (its rules and rejection builders, its loader's
row builders); the default, 0703696, is the last one that decoded, built and encoded a
pydantic model per row. Both sides get the same `sales.raw` records (`devstack generate`
rows, as ingest encodes them), and their outputs are compared: the validator's bytes must be
identical and the loader's rows equal. Timings are the median of --repeat alternating runs;
compare the ratio, not the absolute figures, which depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from devstack.config import REPO_ROOT
from devstack.generate import raw_records
from loader.repository import rejection_row, sale_row
from pydantic import SecretStr
from sales_common.codec import (
    RejectedSaleStruct,
    decode_raw,
    decode_rejected,
    decode_validated,
    encode_struct,
)
from sales_common.events import RawSale, RejectedSale, ValidatedSale, decode, encode
from sales_common.pii import CustomerHasher, PiiSettings
from validator.config import RuleSettings
from validator.rules import validate

RULES = RuleSettings()
HASHER = CustomerHasher(PiiSettings(hmac_key=SecretStr("b" * 32), key_id="k1"))
NOW = datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC)


def load(base: str, path: str, name: str, renames: dict[str, str]) -> types.ModuleType:
    """`path` as it was at `base`, imported as module `name`."""
    source = subprocess.run(
        ["git", "show", f"{base}:{path}"], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout.decode()
    for old, new in renames.items():
        source = source.replace(old, new)
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"{base}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own code
    return module


class Base:
    """The revision's hot path: a pydantic model decoded, built and encoded per row."""

    def __init__(self, base: str) -> None:
        load(base, "libs/common/src/sales_common/rejections.py", "_base_rejections", {})
        rules = {"sales_common.rejections": "_base_rejections"}
        self.rules = load(base, "services/validator/src/validator/rules.py", "_base_rules", rules)
        self.repository = load(
            base, "services/loader/src/loader/repository.py", "_base_repository", {}
        )

    def validator(self, payloads: list[bytes]) -> list[tuple[bool, bytes]]:
        out = []
        for payload in payloads:
            result = self.rules.validate(decode(RawSale, payload), RULES, HASHER, NOW)
            result.event_id.encode()
            out.append((isinstance(result, RejectedSale), encode(result)))
        return out

    def loader(self, records: list[tuple[bool, bytes]]) -> list[tuple[object, ...]]:
        sale_row, rejection_row = self.repository._sale_row, self.repository._rejection_row
        return [
            rejection_row(decode(RejectedSale, payload))
            if rejected
            else sale_row(decode(ValidatedSale, payload))
            for rejected, payload in records
        ]


class Head:
    """This tree's hot path: msgspec Structs (sales_common.codec)."""

    def validator(self, payloads: list[bytes]) -> list[tuple[bool, bytes]]:
        out = []
        for payload in payloads:
            [raw] = decode_raw(payload)
            result = validate(raw, RULES, HASHER, NOW)
            result.event_id.encode()
            out.append((isinstance(result, RejectedSaleStruct), encode_struct(result)))
        return out

    def loader(self, records: list[tuple[bool, bytes]]) -> list[tuple[object, ...]]:
        return [
            rejection_row(decode_rejected(payload))
            if rejected
            else sale_row(decode_validated(payload))
            for rejected, payload in records
        ]


def exact(rows: list[tuple[object, ...]]) -> list[list[object]]:
    return [[str(v) if isinstance(v, Decimal | datetime) else v for v in row] for row in rows]


def timed(run: Callable[[Any], Any], data: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run(data)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--base", default="0703696")
    args = parser.parse_args()
    payloads = raw_records(args.rows)
    base, head = Base(args.base), Head()
    outputs = head.validator(payloads)
    assert base.validator(payloads) == outputs, "the validator's bytes differ"
    assert exact(base.loader(outputs)) == exact(head.loader(outputs)), "the loader's rows differ"
    seconds: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for name, side in (("base", base), ("head", head)):
            seconds.setdefault(f"validator {name}", []).append(timed(side.validator, payloads)[0])
            seconds.setdefault(f"loader {name}", []).append(timed(side.loader, outputs)[0])
    rejected = sum(r for r, _ in outputs)
    print(f"{args.rows} rows ({rejected} rejected), median of {args.repeat}, base {args.base}")
    print("identical output: validator bytes, loader rows")
    for stage in ("validator", "loader"):
        old, new = (statistics.median(seconds[f"{stage} {s}"]) for s in ("base", "head"))
        print(
            f"{stage:9} base {old / args.rows * 1e6:6.2f} us/row  head {new / args.rows * 1e6:6.2f}"
            f" us/row  base/head {old / new:.2f}x"
        )


if __name__ == "__main__":
    main()
