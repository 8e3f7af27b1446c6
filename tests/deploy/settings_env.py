"""The environment variable names each service's settings class reads: the drift guard's truth."""

from __future__ import annotations

from dashboard.config import DashboardSettings
from ingest.config import IngestSettings
from loader.config import LoaderSettings
from pydantic import BaseModel
from pydantic_settings import BaseSettings
from validator.config import ValidatorSettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "validator": ValidatorSettings,
    "loader": LoaderSettings,
    "dashboard": DashboardSettings,
}


def _walk(model: type[BaseModel], prefix: str, required: bool) -> dict[str, bool]:
    names: dict[str, bool] = {}
    for field_name, info in model.model_fields.items():
        alias = info.validation_alias
        name = alias if isinstance(alias, str) else f"{prefix}{field_name}".upper()
        is_required = required and info.is_required()
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.update(_walk(annotation, f"{name}__", is_required))
            names[name] = False  # a group is satisfied by its fields (or may be set as JSON)
        else:
            names[name] = is_required
    return names


def readable(service: str) -> dict[str, bool]:
    """Env var name -> required, for every setting `service` reads."""
    cls = SETTINGS[service]
    prefix = str(cls.model_config.get("env_prefix", ""))
    return _walk(cls, prefix, True)
