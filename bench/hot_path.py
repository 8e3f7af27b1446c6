"""The per-row hot path of the validator and the loader, this tree against a git revision, in
one process, back to back: `uv run python -m bench.hot_path --rows 200000 --base 0703696`.

The revision's own code is loaded from git: its rules and rejection builders, its loader's
row builders and, if it has them (sales_common.codec), its Structs, codec, event ids and
customer hashing. The default, 0703696, is the last one that decoded, built and encoded a
pydantic model per row; a later revision (`git merge-base HEAD main`) measures a change to
the Struct hot path. Both sides get the same rows (`devstack generate` rows, --rows-per-record
to a record), each in the `sales.raw` form it reads: this tree the records ingest writes
(`RawRows`), the revision the `RawPack` ingest wrote before, or, before packs, arrays of rows.
The customer ids are given in clear, as a validator holds them once it has opened a record's
token (their encryption is measured end to end, `make bench`): beside the record, given to
the rows as each side's consumer does, or, before packs, in the rows' fields, where that
validator found them. Their outputs are compared: the validator's bytes must be identical and
the loader's rows equal. Timings are the fastest of --repeat alternating runs in CPU seconds of
the process (on a shared machine the others' load inflates the slower runs, not the fastest);
compare the ratio, not the absolute figures, which depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

import msgspec
from devstack.config import REPO_ROOT
from devstack.generate import RawRecordInClear, raw_records
from loader.repository import rejection_row, sale_row
from pydantic import SecretStr
from sales_common.codec import (
    RejectedSaleStruct,
    decode_raw,
    decode_rejected,
    decode_validated,
    encode_struct,
)
from sales_common.events import (
    RawPack,
    RawRecord,
    RejectedSale,
    ValidatedSale,
    decode,
    encode,
    raw_sales,
)
from sales_common.pii import CustomerHasher, PiiSettings
from sales_native import ValidRows
from validator.config import RuleSettings
from validator.rules import PackRules, native_rows

from bench.cpu import cpu_timed, print_per_row

RULES = RuleSettings()
HMAC_KEY = SecretStr("b" * 32)
PII = PiiSettings(hmac_key=HMAC_KEY, key_id="k1")
HASHER = CustomerHasher(PII)
NOW = datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC)
# A record and its rows' customer ids in clear; None: the ids are in the rows' fields.
Payload = tuple[bytes, list[str | None] | None]


def show(base: str, path: str) -> str | None:
    """`path` as it was at `base`, None if it did not exist."""
    shown = subprocess.run(["git", "show", f"{base}:{path}"], cwd=REPO_ROOT, capture_output=True)
    return shown.stdout.decode() if shown.returncode == 0 else None


def load(base: str, path: str, name: str, renames: dict[str, str]) -> types.ModuleType:
    """`path` as it was at `base`, imported as module `name`."""
    source = show(base, path)
    if source is None:
        raise SystemExit(f"{path} does not exist at {base}")
    for old, new in renames.items():
        source = source.replace(old, new)
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"{base}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own code
    return module


class ModelBase:
    """A revision before sales_common.codec: a pydantic model decoded, built and encoded per
    row."""

    def __init__(self, base: str) -> None:
        load(base, "libs/common/src/sales_common/rejections.py", "_base_rejections", {})
        rules = {"sales_common.rejections": "_base_rejections"}
        self.rules = load(base, "services/validator/src/validator/rules.py", "_base_rules", rules)
        self.repository = load(
            base, "services/loader/src/loader/repository.py", "_base_repository", {}
        )

    def validator(self, payloads: list[Payload]) -> list[tuple[bool, bytes]]:
        out = []
        for payload, _ in payloads:  # arrays of rows, the ids in their fields
            for raw in raw_sales(payload):
                result = self.rules.validate(raw, RULES, HASHER, NOW)
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


# What a Struct revision's hot path is made of, loaded in this order, each importing the ones
# before it under their `_base_` names.
_STRUCT_MODULES = (
    ("libs/common/src/sales_common/events.py", "sales_common.events"),
    ("libs/common/src/sales_common/pii.py", "sales_common.pii"),
    ("libs/common/src/sales_common/codec.py", "sales_common.codec"),
    ("libs/common/src/sales_common/rejections.py", "sales_common.rejections"),
    ("services/validator/src/validator/rules.py", "validator.rules"),
    ("services/loader/src/loader/repository.py", "loader.repository"),
)


class StructBase:
    """A revision with sales_common.codec: its own Structs, rules, hashing and row builders."""

    def __init__(self, base: str) -> None:
        renames: dict[str, str] = {}
        modules: dict[str, types.ModuleType] = {}
        for path, name in _STRUCT_MODULES:
            alias = "_base_" + name.rpartition(".")[2]
            modules[name] = load(base, path, alias, renames)
            renames[name] = alias
        self.codec = modules["sales_common.codec"]
        self.validate = modules["validator.rules"].validate
        self.repository = modules["loader.repository"]
        pii = modules["sales_common.pii"]
        self.hasher = pii.CustomerHasher(pii.PiiSettings(hmac_key=HMAC_KEY, key_id="k1"))

    def validator(self, payloads: list[Payload]) -> list[tuple[bool, bytes]]:
        codec, validate, hasher, out = self.codec, self.validate, self.hasher, []
        for payload, ids in payloads:
            # A pack since the ids are sealed per pack, a list since packs, before a row.
            decoded = codec.decode_raw(payload)
            rows = getattr(decoded, "rows", decoded)
            for index, raw in enumerate(rows if isinstance(rows, list) else [rows]):
                if ids is not None and (customer_id := ids[index]) is not None:
                    raw.fields["customer_id"] = customer_id  # as its consumer does
                result = validate(raw, RULES, hasher, NOW)
                result.event_id.encode()
                out.append(
                    (isinstance(result, codec.RejectedSaleStruct), codec.encode_struct(result))
                )
        return out

    def loader(self, records: list[tuple[bool, bytes]]) -> list[tuple[object, ...]]:
        codec, repository = self.codec, self.repository
        return [
            repository.rejection_row(codec.decode_rejected(payload))
            if rejected
            else repository.sale_row(codec.decode_validated(payload))
            for rejected, payload in records
        ]


class Head:
    """This tree's hot path: msgspec Structs (sales_common.codec), rows read by place
    (validator.rules.PackRules), as ValidatorHandler runs them: the rows that keep every rule
    through the native path (`native`), the others through the Python rules (all of them
    when `native` is None)."""

    def __init__(self, native: ValidRows | None) -> None:
        self.native = native

    def validator(self, payloads: list[Payload]) -> list[tuple[bool, bytes]]:
        out = []
        stamp = msgspec.json.encode(NOW).decode()
        for payload, ids in payloads:
            assert ids is not None
            offset = 0
            for pack in decode_raw(payload):
                rows = PackRules(pack, RULES, HASHER, NOW)
                count = len(pack.rows)
                own = ids[offset : offset + count]
                encoded = rows.encode_valid(self.native, own, stamp) if self.native else None
                for index in range(count):
                    if encoded is not None and (sale := encoded[index]) is not None:
                        out.append((False, sale[1]))
                        continue
                    result = rows.validate(index, own[index])
                    result.event_id.encode()
                    out.append((isinstance(result, RejectedSaleStruct), encode_struct(result)))
                offset += count
        return out

    def loader(self, records: list[tuple[bool, bytes]]) -> list[tuple[object, ...]]:
        return [
            rejection_row(decode_rejected(payload))
            if rejected
            else sale_row(decode_validated(payload))
            for rejected, payload in records
        ]


def older_forms(records: list[RawRecordInClear], packs: bool) -> list[Payload]:
    """The same rows in a form a revision reads: a `RawPack` with its ids beside it, or, if it
    predates packs, an array of `RawSale` (a lone `RawSale` for records of a row, the form
    every revision reads), each id in its row's fields after the others (where the validator
    puts a pack's ids, so the rejected rows' fields come out alike)."""
    out: list[Payload] = []
    for value, ids in records:
        sales = RawRecord.model_validate_json(value).rows()
        if packs:
            out.append((encode(RawPack(rows=sales)), ids))
            continue
        with_ids = [
            sale
            if customer_id is None
            else sale.model_copy(update={"fields": sale.fields | {"customer_id": customer_id}})
            for sale, customer_id in zip(sales, ids, strict=True)
        ]
        lone = len(with_ids) == 1
        out.append(
            (encode(with_ids[0]) if lone else b"[%s]" % b",".join(map(encode, with_ids)), None)
        )
    return out


def exact(rows: list[tuple[object, ...]]) -> list[list[object]]:
    return [[str(v) if isinstance(v, Decimal | datetime) else v for v in row] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--base", default="0703696")
    parser.add_argument(
        "--rows-per-record", type=int, default=128, help="as ingest packs them (1: one a record)"
    )
    args = parser.parse_args()
    step = args.rows_per_record
    records = raw_records(args.rows, rows_per_record=step)
    payloads: list[Payload] = [(value, ids) for value, ids in records]
    codec = show(args.base, "libs/common/src/sales_common/codec.py")
    base = (ModelBase if codec is None else StructBase)(args.base)
    head, python = Head(native_rows(RULES, PII)), Head(None)
    has_packs = "class RawPackStruct" in (codec or "")
    if codec is not None and step > 1 and not (has_packs or "list[RawSaleStruct]" in codec):
        raise SystemExit(f"{args.base} reads a row a record: --rows-per-record 1")
    base_payloads = older_forms(records, has_packs)
    outputs = head.validator(payloads)
    assert base.validator(base_payloads) == outputs, "the validator's bytes differ"
    assert python.validator(payloads) == outputs, "the native path's bytes differ"
    assert exact(base.loader(outputs)) == exact(head.loader(outputs)), "the loader's rows differ"
    seconds: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for name, side, given in (("base", base, base_payloads), ("head", head, payloads)):
            seconds.setdefault(f"validator {name}", []).append(
                cpu_timed(partial(side.validator, given))[0]
            )
            seconds.setdefault(f"loader {name}", []).append(
                cpu_timed(partial(side.loader, outputs))[0]
            )
        seconds.setdefault("validator python", []).append(
            cpu_timed(partial(python.validator, payloads))[0]
        )
    rejected = sum(r for r, _ in outputs)
    print(
        f"{args.rows} rows ({rejected} rejected) in records of {step}, best of {args.repeat},"
        f" base {args.base}"
    )
    print("identical output: validator bytes, loader rows")
    sizes = [
        sum(len(value) for value, _ in given) / args.rows for given in (base_payloads, payloads)
    ]
    print(
        f"sales.raw base {sizes[0]:6.1f} bytes/row  head {sizes[1]:6.1f} bytes/row (ids in clear)"
    )
    for stage in ("validator", "loader"):
        old, new = (min(seconds[f"{stage} {s}"]) for s in ("base", "head"))
        print_per_row(stage, old, new, args.rows)
    # The native path against this tree's Python rules alone (base: Python, head: native).
    python_s, native_s = min(seconds["validator python"]), min(seconds["validator head"])
    print_per_row("native", python_s, native_s, args.rows)


if __name__ == "__main__":
    main()
