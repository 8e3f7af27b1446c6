"""Erasure on request: `POST /api/v1/erasures`, scope `admin` (docs/SECURITY.md, "Erasure").

The customer id is hashed here under every configured key, the current one and those kept
after a rotation, and only the hashes go to the database: erase_customer (0007_erasures.sql,
redefined by 0008) anonymises or deletes the rows carrying them and records the request, in one
transaction.
The id is never logged, stored or answered back; the request log holds no hash either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sales_common.logging import get_logger

from dashboard.deps import AdminDep, RepositoryDep, SettingsDep

log = get_logger(__name__)
router = APIRouter()

ErasureMode = Literal["anonymise", "delete"]


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A secret, so that no repr, log line or error message can show it.
    customer_id: SecretStr = Field(
        max_length=4096,  # ingest's longest field
        description="the customer id as uploaded (surrounding spaces ignored, as when hashed)",
    )
    mode: ErasureMode = Field(
        default="anonymise",
        description="anonymise: the rows stay, unlinked from the customer; delete: the rows"
        " go and every total moves back by what they had added",
    )

    @field_validator("customer_id")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("customer_id must not be blank")
        return value


class ErasureResult(BaseModel):
    erasure_id: UUID = Field(description="the request's record in the erasure log")
    requested_at: datetime
    mode: ErasureMode
    keys_searched: int = Field(description="hashing keys the customer was looked up under")
    sales_rows: int = Field(description="sales anonymised or deleted now")
    rejection_rows: int = Field(description="rejected rows anonymised or deleted now")


@router.post("/api/v1/erasures", response_model=ErasureResult)
async def erase(
    request: ErasureRequest,
    admin: AdminDep,
    settings: SettingsDep,
    repository: RepositoryDep,
) -> ErasureResult:
    """Erase one customer's data. Repeating it finds nothing more (counts 0) and is recorded
    again. Rows of the customer still in flight are stored anonymised when they arrive."""
    customer_id = request.customer_id.get_secret_value()
    hashes = [hasher.hash(customer_id) for hasher in settings.pii.hashers()]
    row = await repository.erase_customer(hashes, request.mode, admin.subject)
    result = ErasureResult(
        erasure_id=row["erasure_id"],
        requested_at=row["requested_at"],
        mode=request.mode,
        keys_searched=len(hashes),
        sales_rows=row["sales_rows"],
        rejection_rows=row["rejection_rows"],
    )
    log.info(
        "customer_erased",
        erasure_id=str(result.erasure_id),
        mode=result.mode,
        keys_searched=result.keys_searched,
        sales_rows=result.sales_rows,
        rejection_rows=result.rejection_rows,
        requested_by=admin.subject,
    )
    return result
