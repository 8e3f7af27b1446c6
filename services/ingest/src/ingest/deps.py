"""The dependencies ingest's handlers take, each a part of the typed lifespan state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sales_common.auth import SCOPE_UPLOADS_WRITE, Principal, require_scope

from ingest.config import IngestSettings
from ingest.service import UploadService
from ingest.state import IngestState

_part = IngestState.dependency

SettingsDep = Annotated[IngestSettings, Depends(_part(lambda s: s.settings))]
UploadServiceDep = Annotated[UploadService, Depends(_part(lambda s: s.upload_service))]
UploaderDep = Annotated[Principal, Depends(require_scope(SCOPE_UPLOADS_WRITE))]
