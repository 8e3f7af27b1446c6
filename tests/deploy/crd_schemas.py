"""Custom resources checked against their operators' CRD schemas, strictly.

The API server prunes (or, with strict field validation, refuses) a field its CRD's
openAPIV3Schema does not list, unless the schema preserves unknown fields there; a pruned
field is a setting silently lost. So every object schema that lists properties is closed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

Schemas = dict[tuple[str, str], dict[str, Any]]  # (apiVersion, kind) -> JSON Schema


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: _strict(value) for key, value in node.items()}
    if schema.pop("x-kubernetes-int-or-string", False):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def load(files: Iterable[Path]) -> Schemas:
    """Every served version of every CRD in `files` (YAML, one CRD or a list per document)."""
    schemas: Schemas = {}
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            for crd in document if isinstance(document, list) else [document]:
                spec = crd["spec"]
                for version in spec["versions"]:
                    api_version = f"{spec['group']}/{version['name']}"
                    schema = version["schema"]["openAPIV3Schema"]
                    schemas[(api_version, spec["names"]["kind"])] = _strict(schema)
    return schemas


def errors(schemas: Schemas, document: dict[str, Any]) -> list[str]:
    """What is wrong with one custom resource; it must have a schema."""
    key = (document["apiVersion"], document["kind"])
    assert key in schemas, f"no CRD schema for {key}"
    validator = jsonschema.Draft7Validator(schemas[key])
    return [
        f"{document['kind']}/{document['metadata']['name']} {list(e.path)}: {e.message}"
        for e in validator.iter_errors(document)
    ]
