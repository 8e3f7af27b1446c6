"""The four services: names and default HTTP ports, the one Python source for them.

Each service's settings defaults, the container entry point and the dev stack read this
table; the chart and compose.yaml repeat the values and tests/deploy checks them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str
    port: int  # default HTTP port, also the dev stack's

    @property
    def env_prefix(self) -> str:
        """`INGEST_` for ingest: what its settings class reads (`INGEST_PORT`, ...)."""
        return f"{self.name.upper()}_"


# In start order: the loader first, it applies the migrations at start-up.
SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("loader", 8003),
        Service("validator", 8002),
        Service("ingest", 8001),
        Service("dashboard", 8004),
    )
}
