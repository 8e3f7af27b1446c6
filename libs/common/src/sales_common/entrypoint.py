"""Container entry point: `python -m sales_common.entrypoint [service|migrate]`.

Runs the service named by the argument or by $SERVICE in this process (no shell in between,
so SIGTERM reaches it). `migrate` applies the database migrations and exits (every image
holds them: they ship in sales_common).
"""

from __future__ import annotations

import os
import runpy
import sys

from sales_common.services import SERVICES


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SERVICE", "")
    if command == "migrate":
        command = "sales_common.schema.cli"
    elif command not in SERVICES:
        sys.exit(f"usage: entrypoint {{{'|'.join(SERVICES)}|migrate}} (got {command!r})")
    sys.argv = [command]
    runpy.run_module(command, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
