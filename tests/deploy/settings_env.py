"""The environment variable names each settings class reads: the drift guard's truth."""

from __future__ import annotations

from dashboard.config import DashboardSettings
from ingest.config import IngestSettings
from loader.config import LoaderSettings
from pydantic import BaseModel
from pydantic_settings import BaseSettings
from sales_common.acls import AclSettings
from sales_common.schema.config import MigrateSettings
from validator.config import ValidatorSettings

SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "validator": ValidatorSettings,
    "loader": LoaderSettings,
    "dashboard": DashboardSettings,
}
# Everything the chart or compose.yaml configures: the services and the one-shot migrate
# command (the chart's hook Job, compose's `migrate` service) and compose's `acls` one-shot.
SETTINGS: dict[str, type[BaseSettings]] = {
    **SERVICE_SETTINGS,
    "migrate": MigrateSettings,
    "acls": AclSettings,
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


def readable(program: str) -> dict[str, bool]:
    """Env var name -> required, for every setting `program` reads."""
    cls = SETTINGS[program]
    prefix = str(cls.model_config.get("env_prefix", ""))
    return _walk(cls, prefix, True)


def assert_sets_only_what_it_reads(label: str, names: set[str], program: str) -> None:
    """`names`, the variables a deployment sets for `program`, are all read, and every
    required one is among them."""
    known = readable(program)
    assert names <= set(known), f"{label} sets unknown settings {names - set(known)}"
    required = {n for n, needed in known.items() if needed}
    assert required <= names, f"{label} misses {required - names}"
