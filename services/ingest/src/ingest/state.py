"""What ingest's lifespan opens and hands to its handlers (see deps.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sales_common.auth import AuthState

from ingest.config import IngestSettings
from ingest.service import UploadService


@dataclass(frozen=True, kw_only=True)
class IngestState(AuthState):
    settings: IngestSettings
    upload_service: UploadService
