"""Validation of OpenLineage events against the official 2-0-2 JSON Schemas (offline, no network).

The spec directory holds verbatim copies of spec/OpenLineage.json, spec/facets/*.json and
spec/registry/**/facets/*.json. Every file is registered under its `$id`, so the cross-file
`$ref`s (facet -> core) resolve locally.

An event is validated in two steps:
1. the core schema of its kind, picked from `schemaURL` (`#/$defs/RunEvent|DatasetEvent|JobEvent`),
   with format checks on (runId must be a UUID, eventTime a date-time, producer a URI, ...);
2. every facet against the schema of its own facet file, chosen by key AND position: the same key
   means a different schema on a run, a job, a dataset, an input dataset (`inputFacets`) or an
   output dataset (`outputFacets`) (e.g. `tags`, `ownership`, `documentation`, `lineage`,
   `dataQualityMetrics`, `subset`). Facets without a schema file here (custom facets) are checked
   against the core base of their position (RunFacet, JobFacet, DatasetFacet, ...: `_producer`
   and `_schemaURL` required).
"""
from __future__ import annotations

import glob
import json
import os

import jsonschema_rs

from contract_common import Problem, SpecMissing, fmt_path, shared_spec_dir

CORE_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
KINDS = ("RunEvent", "DatasetEvent", "JobEvent")
# Positions of facets, named after the core definition a facet of that position extends.
POSITIONS = ("RunFacet", "JobFacet", "DatasetFacet", "InputDatasetFacet", "OutputDatasetFacet")


def _join(prefix: str, parts) -> str:
    rest = fmt_path(parts)
    if rest == "$":
        return prefix
    return prefix + rest if rest.startswith("[") else f"{prefix}.{rest}"


class EventValidator:
    def __init__(self, spec_dir: str | None = None):
        spec_dir = os.path.abspath(spec_dir or shared_spec_dir("OPENLINEAGE_SPEC_DIR", "openlineage-spec"))
        core_path = os.path.join(spec_dir, "OpenLineage.json")
        if not os.path.isfile(core_path):
            raise SpecMissing(
                f"OpenLineage spec not found: {core_path} is missing. Expected the verbatim "
                "OpenLineage 2-0-2 JSON Schemas in $REPO_DIR/../shared/openlineage-spec "
                "(override with OPENLINEAGE_SPEC_DIR)."
            )
        files = [core_path]
        files += sorted(glob.glob(os.path.join(spec_dir, "facets", "*.json")))
        files += sorted(glob.glob(os.path.join(spec_dir, "registry", "**", "facets", "*.json"), recursive=True))
        docs: dict[str, dict] = {}
        for f in files:
            with open(f, encoding="utf-8") as fh:
                d = json.load(fh)
            if "$id" not in d:
                continue
            docs[d["$id"]] = d
        if CORE_ID not in docs:
            raise SpecMissing(f"{core_path} does not have $id {CORE_ID} (wrong spec version?)")
        self.spec_dir = spec_dir
        self.facet_files = len(docs) - 1
        self._registry = jsonschema_rs.Registry(list(docs.items()))

        def compile_ref(ref: str):
            return jsonschema_rs.Draft202012Validator(
                {"$ref": ref}, registry=self._registry, validate_formats=True
            )

        self._core = {k: compile_ref(f"{CORE_ID}#/$defs/{k}") for k in KINDS}
        self._base = {p: compile_ref(f"{CORE_ID}#/$defs/{p}") for p in POSITIONS}
        # (position, facet key) -> (validator, "FacetFile.json#/$defs/Def")
        self._facets: dict[tuple[str, str], tuple[object, str]] = {}
        for fid, doc in docs.items():
            if fid == CORE_ID:
                continue
            defs = doc.get("$defs", {})
            for key, prop in doc.get("properties", {}).items():
                # the property is a $ref to the facet definition, or an anyOf/oneOf of them
                # (LineageFacet: dataset and job variants)
                refs = [prop.get("$ref", "")] + [s.get("$ref", "") for c in ("anyOf", "oneOf") for s in prop.get(c, [])]
                found: dict[str, str] = {}
                for ref in refs:
                    if ref.startswith("#/$defs/"):
                        for pos, n in self._positions_of(defs, ref[len("#/$defs/"):], set()).items():
                            found.setdefault(pos, n)
                for pos, def_name in found.items():
                    label = f"{fid.rsplit('/', 1)[-1]}#/$defs/{def_name}"
                    self._facets[(pos, key)] = (compile_ref(f"{fid}#/$defs/{def_name}"), label)

    @staticmethod
    def _positions_of(defs: dict, name: str, seen: set) -> dict[str, str]:
        """Which core facet kinds a facet definition extends: {position: def name}."""
        if name in seen or name not in defs:
            return {}
        seen.add(name)
        d = defs[name]
        out: dict[str, str] = {}
        for sub in d.get("allOf", []):
            ref = sub.get("$ref", "")
            if ref.startswith(CORE_ID + "#/$defs/"):
                pos = ref.rsplit("/", 1)[-1]
                if pos in POSITIONS:
                    out[pos] = name
        for comb in ("oneOf", "anyOf"):
            for sub in d.get(comb, []):
                ref = sub.get("$ref", "")
                if ref.startswith("#/$defs/"):
                    for pos, n in EventValidator._positions_of(defs, ref[len("#/$defs/"):], seen).items():
                        out.setdefault(pos, n)
        return out

    def facet_schema(self, position: str, key: str) -> str | None:
        v = self._facets.get((position, key))
        return v[1] if v else None

    @staticmethod
    def kind_of(event) -> str | None:
        url = event.get("schemaURL") if isinstance(event, dict) else None
        if isinstance(url, str):
            for k in KINDS:
                if url.endswith("#/$defs/" + k):
                    return k
        return None

    def validate(self, event, max_problems: int = 20) -> tuple[str | None, list[Problem]]:
        """Returns (kind, problems); the event is valid when problems is empty."""
        if not isinstance(event, dict):
            return None, [Problem("$", "the body must be a JSON object (one OpenLineage event)")]
        kind = self.kind_of(event)
        # Marquez (EventTypeResolver) reads any other schemaURL as a RunEvent; the spec says it must end
        # in one of the three, and this contract server holds producers to the spec.
        if kind is None:
            return None, [Problem(
                "schemaURL",
                f"must end in #/$defs/RunEvent, #/$defs/DatasetEvent or #/$defs/JobEvent "
                f"(got {event.get('schemaURL')!r})",
            )]
        problems: list[Problem] = []
        facet_paths: set[str] = set()
        for prefix, pos, facets in self._facet_sites(kind, event):
            if not isinstance(facets, dict):
                continue  # the core schema reports it
            facet_paths.add(prefix)
            for key, value in facets.items():
                if isinstance(value, dict) and value.get("_deleted") is True:
                    # a deletion marker carries no facet body; only the base fields apply
                    validator, label = self._base[pos], f"OpenLineage.json#/$defs/{pos}"
                else:
                    validator, label = self._facets.get((pos, key), (self._base[pos], f"OpenLineage.json#/$defs/{pos}"))
                for err in validator.iter_errors(value):
                    problems.append(Problem(_join(f"{prefix}.{key}", err.instance_path), f"{err.message} ({label})"))
                    if len(problems) >= max_problems:
                        return kind, problems
        for err in self._core[kind].iter_errors(event):
            path = fmt_path(err.instance_path)
            # facet containers are `anyOf` in the core schema; their vague error duplicates the
            # precise facet errors above
            if path in facet_paths and problems:
                continue
            problems.append(Problem(path, f"{err.message} (OpenLineage.json#/$defs/{kind})"))
            if len(problems) >= max_problems:
                break
        return kind, problems

    @staticmethod
    def _facet_sites(kind: str, event: dict):
        def ds_sites(prefix, ds, io):
            if not isinstance(ds, dict):
                return
            yield f"{prefix}.facets", "DatasetFacet", ds.get("facets")
            if io == "input":
                yield f"{prefix}.inputFacets", "InputDatasetFacet", ds.get("inputFacets")
            elif io == "output":
                yield f"{prefix}.outputFacets", "OutputDatasetFacet", ds.get("outputFacets")

        if kind == "DatasetEvent":
            yield from ds_sites("dataset", event.get("dataset"), None)
            return
        if kind == "RunEvent" and isinstance(event.get("run"), dict):
            yield "run.facets", "RunFacet", event["run"].get("facets")
        if isinstance(event.get("job"), dict):
            yield "job.facets", "JobFacet", event["job"].get("facets")
        for io, key in (("input", "inputs"), ("output", "outputs")):
            lst = event.get(key)
            if isinstance(lst, list):
                for i, ds in enumerate(lst):
                    yield from ds_sites(f"{key}[{i}]", ds, io)
