"""Ingest's per-row work from checked CSV rows to `sales.raw` records, this tree against a git
revision, in one process: `uv run python -m bench.ingest_rows --rows 200000 --base 178b2ed`.

The revision's own spool (sales_common.events, ingest.spool, ingest.packing) is loaded from
git. Both sides get the same `devstack generate` rows, in writes of --write-rows as ingest
spools them, with customer ids (sealed per write in the spool, per record in the records):
the spool's writes, then reading it back into records (`raw_records`, --rows-per-record a
record). Timings are the fastest of --repeat alternating runs in CPU seconds of the process;
compare the ratio, not the absolute figures, which depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import types
from functools import partial
from typing import Any, TypeVar

from devstack.generate import HEADER, rows
from ingest import packing, spool
from ingest.config import SpoolSettings, UploadLimits
from pydantic import SecretStr
from sales_common import events
from sales_common.pii import EncryptionSettings, FieldCipher

from bench.cpu import cpu_timed, print_per_row
from bench.hot_path import load, show

CIPHER = FieldCipher(EncryptionSettings(key=SecretStr("b" * 32), key_id="e1"))
UPLOAD = "7d1c2a4e-0000-4000-8000-000000000001"
RECEIVED_AT = "2026-11-26T12:00:00.123456+00:00"
T = TypeVar("T")


class Side:
    """A revision's spool, packing and record encoder."""

    def __init__(
        self, events: types.ModuleType, spool: types.ModuleType, packing: types.ModuleType
    ) -> None:
        self.events, self.spool, self.packing = events, spool, packing

    def write(self, header: list[str], writes: list[list[list[str]]]) -> Any:
        """The revision's Spool, every write in it."""
        budget = self.spool.SpoolBudget(1 << 40)
        written = self.spool.Spool(SpoolSettings(), budget, CIPHER, UPLOAD)
        for cells in writes:
            written.write(header, cells)
        return written

    def records(self, header: list[str], written: Any, limits: UploadLimits) -> list[bytes]:
        encoder = self.events.RawRecords
        if "columns" in inspect.signature(encoder).parameters:  # RawRows
            encoder = encoder(UPLOAD, written.columns, len(header), "bench.csv", RECEIVED_AT)
        else:
            encoder = encoder(UPLOAD, len(header), "bench.csv", RECEIVED_AT)
        made = self.packing.raw_records(written.rows(), encoder, UPLOAD, CIPHER, limits)
        return [value for _, value in made]


def base_side(base: str) -> Side:
    renames: dict[str, str] = {}
    modules = []
    for path, name in (
        ("libs/common/src/sales_common/events.py", "sales_common.events"),
        ("services/ingest/src/ingest/spool.py", "ingest.spool"),
        ("services/ingest/src/ingest/packing.py", "ingest.packing"),
    ):
        alias = "_base_" + name.rpartition(".")[2]
        modules.append(load(base, path, alias, renames))
        renames[name] = alias
    return Side(*modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--base", default="178b2ed")
    parser.add_argument("--write-rows", type=int, default=1000)
    parser.add_argument("--rows-per-record", type=int, default=128)
    args = parser.parse_args()
    if show(args.base, "services/ingest/src/ingest/packing.py") is None:
        raise SystemExit(f"{args.base} has no ingest.packing")
    header, *table = list(csv.reader([HEADER, *rows(args.rows)]))
    limits = UploadLimits(rows_per_record=args.rows_per_record)
    sides = {"base": base_side(args.base), "head": Side(events, spool, packing)}
    step = args.write_rows
    seconds: dict[str, list[float]] = {}
    sizes: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, side in sides.items():
            # The spool takes the ids out of the rows it is given: a copy each run.
            writes = [
                [list(cells) for cells in table[i : i + step]] for i in range(0, len(table), step)
            ]
            spent, written = cpu_timed(partial(side.write, header, writes))
            seconds.setdefault(f"spool {name}", []).append(spent)
            with written:
                spent, made = cpu_timed(partial(side.records, header, written, limits))
            seconds.setdefault(f"records {name}", []).append(spent)
            sizes[name] = sum(map(len, made)) / args.rows
    print(
        f"{args.rows} rows in writes of {step}, records of {args.rows_per_record},"
        f" best of {args.repeat}, base {args.base}"
    )
    for stage in ("spool", "records"):
        old, new = (min(seconds[f"{stage} {s}"]) for s in ("base", "head"))
        print_per_row(stage, old, new, args.rows)
    old, new = (
        sum(min(seconds[f"{st} {s}"]) for st in ("spool", "records")) for s in ("base", "head")
    )
    print_per_row("both", old, new, args.rows)
    print(
        f"sales.raw base {sizes['base']:6.1f} bytes/row  head {sizes['head']:6.1f} bytes/row"
        f" (ids sealed)  base/head {sizes['base'] / sizes['head']:.2f}x"
    )


if __name__ == "__main__":
    main()
