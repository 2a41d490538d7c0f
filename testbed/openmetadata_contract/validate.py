"""Request bodies checked against the official OpenMetadata JSON Schemas (offline).

The schema directory is `$OPENMETADATA_SPEC_DIR`, else `<repo>/../shared/openmetadata-spec`: one
self-contained file per request/entity (`$defs` inlined), e.g. `CreatePipelineRequest.schema.json`.
Beyond the schemas, the rules the OpenMetadata server enforces and the schemas miss are applied
here too: entity names may not contain `::` (EntityName's pattern upstream).
"""
from __future__ import annotations

import json
import os

import jsonschema_rs

from contract_common import Problem, SpecMissing, fmt_path, shared_spec_dir

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


class Validator:
    def __init__(self, spec_dir: str | None = None):
        self.spec_dir = os.path.abspath(spec_dir or shared_spec_dir("OPENMETADATA_SPEC_DIR", "openmetadata-spec"))
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
            problems.append(Problem(fmt_path(err.instance_path), f"{err.message} ({schema}.schema.json)"))
            if len(problems) >= max_problems:
                return problems
        name = body.get("name")
        if isinstance(name, str) and "::" in name:
            problems.append(Problem("name", "name must match \"^((?!::).)*$\" (EntityName)"))
        return problems
