"""Request bodies checked against the official OpenMetadata JSON Schemas (offline).

The schema directory is `$OPENMETADATA_SPEC_DIR`, else `<repo>/../shared/openmetadata-spec`: one
self-contained file per request/entity (`$defs` inlined), e.g. `CreatePipelineRequest.schema.json`.
Beyond the schemas, the rules the OpenMetadata server enforces and the schemas miss are applied
here too: entity names may not contain `::` (EntityName's pattern upstream).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import jsonschema_rs

SCHEMAS = (
    "CreatePipelineServiceRequest",
    "CreatePipelineRequest",
    "PipelineStatus",
    "AddLineageRequest",
    "Table",
    "CreateClassificationRequest",
    "CreateTagRequest",
    "UsageRequest",
)


class SpecMissing(RuntimeError):
    pass


@dataclass
class Problem:
    path: str
    reason: str

    def as_json(self) -> dict:
        return {"path": self.path, "reason": self.reason}


def default_spec_dir() -> str:
    env = os.environ.get("OPENMETADATA_SPEC_DIR")
    if env:
        return env
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    return os.path.join(repo, "..", "shared", "openmetadata-spec")


def _fmt_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "$"


class Validator:
    def __init__(self, spec_dir: str | None = None):
        self.spec_dir = os.path.abspath(spec_dir or default_spec_dir())
        self.docs: dict[str, dict] = {}
        self._validators: dict[str, object] = {}
        for name in SCHEMAS:
            path = os.path.join(self.spec_dir, f"{name}.schema.json")
            if not os.path.isfile(path):
                raise SpecMissing(
                    f"OpenMetadata schema not found: {path}. Expected the OpenMetadata JSON Schemas in "
                    "$REPO_DIR/../shared/openmetadata-spec (override with OPENMETADATA_SPEC_DIR)."
                )
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
            self.docs[name] = doc
            self._validators[name] = jsonschema_rs.Draft202012Validator(doc, validate_formats=True)
        # LineageDetails alone (PATCH /api/v1/lineage/... applies a JSON Patch to it)
        lineage = self.docs["AddLineageRequest"]
        self._validators["LineageDetails"] = jsonschema_rs.Draft202012Validator(
            {"$defs": lineage["$defs"], "$ref": "#/$defs/LineageDetails"}, validate_formats=True
        )

    def validate(self, schema: str, body, max_problems: int = 20) -> list[Problem]:
        if not isinstance(body, dict):
            return [Problem("$", f"the body must be a JSON object ({schema})")]
        problems = []
        for err in self._validators[schema].iter_errors(body):
            problems.append(Problem(_fmt_path(err.instance_path), f"{err.message} ({schema}.schema.json)"))
            if len(problems) >= max_problems:
                return problems
        name = body.get("name")
        if isinstance(name, str) and "::" in name:
            problems.append(Problem("name", "name must match \"^((?!::).)*$\" (EntityName)"))
        return problems
