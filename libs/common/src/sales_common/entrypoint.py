"""Container entry point: `python -m sales_common.entrypoint [service|migrate|acls]`.

Runs the service named by the argument or by $SERVICE in this process (no shell in between,
so SIGTERM reaches it). `migrate` applies the database migrations and exits (every image
holds them: they ship in sales_common); `acls` applies the Kafka principals' credentials and
ACLs (sales_common.acls) and exits.
"""

from __future__ import annotations

import os
import runpy
import sys

from sales_common.services import SERVICES

_ONE_SHOTS = {"migrate": "sales_common.schema.cli", "acls": "sales_common.acls"}


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SERVICE", "")
    if command in _ONE_SHOTS:
        command = _ONE_SHOTS[command]
    elif command not in SERVICES:
        sys.exit(f"usage: entrypoint {{{'|'.join([*SERVICES, *_ONE_SHOTS])}}} (got {command!r})")
    sys.argv = [command]
    runpy.run_module(command, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
