"""Customer ids sealed one a row (how ingest wrote sales.raw before packs) against one token a
pack (now), in one process: `uv run python -m bench.sealing --rows 200000`.

Both sides seal (ingest) and open (validator) the ids of the same `devstack generate` rows
with the same key, through sales_common.pii. Timings are the fastest of --repeat alternating
runs in CPU seconds of the process; compare the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable

from devstack.generate import HEADER, rows
from pydantic import SecretStr
from sales_common.pii import EncryptionSettings, FieldCipher, row_context

CIPHER = FieldCipher(EncryptionSettings(key=SecretStr("b" * 32), key_id="e1"))
UPLOAD = "bench-upload"


def per_row(ids: list[str], _pack: int) -> None:
    tokens = [CIPHER.encrypt(i, row_context(UPLOAD, n)) for n, i in enumerate(ids, 1)]
    for n, token in enumerate(tokens, 1):
        CIPHER.decrypt(token, row_context(UPLOAD, n))


def per_pack(ids: list[str], pack: int) -> None:
    for first in range(0, len(ids), pack):
        chunk = ids[first : first + pack]
        token = CIPHER.seal_ids(chunk, UPLOAD, first + 1)
        CIPHER.open_ids(token, UPLOAD, first + 1, len(chunk))


def fastest(run: Callable[[list[str], int], None], ids: list[str], pack: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run(ids, pack)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows-per-record", type=int, default=128)
    args = parser.parse_args()
    reader = csv.DictReader([HEADER, *rows(args.rows)])
    ids = [row["customer_id"] for row in reader]
    pack = args.rows_per_record
    row_s = fastest(per_row, ids, pack, args.repeat)
    pack_s = fastest(per_pack, ids, pack, args.repeat)
    print(f"{args.rows} customer ids, sealed and opened, best of {args.repeat}")
    for name, seconds in (("a token a row", row_s), (f"a token per {pack} rows", pack_s)):
        print(f"{name:22} {seconds / args.rows * 1e6:6.2f} us/row")
    print(f"ratio {row_s / pack_s:.1f}x")


if __name__ == "__main__":
    main()
