"""Helpers the Snakefile calls: config resolution, before any rule exists.

Resolution writes nothing: the resolved params reach results/<run>/params.yaml
through the Snakefile's onstart hook (lediflow.pipeline.runlock.begin), which runs only
for a real execution that holds Snakemake's lock, so `snakemake -n` and a
refused invocation leave the run folder untouched.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

from lediflow.pipeline import runlock
from lediflow.pipeline.config import Params, deep_merge, load_schema, read_yaml, validate
from lediflow.pipeline.paths import run_dir
from lediflow.core.errors import ConfigError


def _resolve_ref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return root["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def _types(schema: dict[str, Any]) -> list[str]:
    types = schema.get("type", [])
    return types if isinstance(types, list) else [types]


def _wants_string(schema: dict[str, Any]) -> bool:
    return not _types(schema) or "string" in _types(schema)


def _coerce(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """Parse a string as YAML where the schema wants another type (recursively through objects and arrays)."""
    schema = _resolve_ref(schema, root)
    if isinstance(value, str) and not _wants_string(schema):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            return value  # validation names the key and what it expects
        if isinstance(value, str) and "number" in _types(schema):
            try:
                value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as text
            except ValueError:
                pass
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: _coerce(v, props.get(k, extra if isinstance(extra, dict) else {}), root) for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce(v, schema["items"], root) for v in value]
    return value


def coerce_overrides(overrides: dict[str, Any]) -> Params:
    """Snakemake's --config reads `data={resolution: 64}` with YAML's BaseLoader, so every leaf is a string."""
    root = load_schema()
    return _coerce(dict(overrides), root, root)


def resolve_config(config: dict, overrides: dict[str, Any] | None = None, config_files: Iterable[str | Path] = ()
                   ) -> tuple[Params, Path, Path]:
    """Validate Snakemake's merged config; exit 2 with one line when it is bad or would change a running run.

    `overrides` are Snakemake's --config values (coerced to the schema's types), `config_files` every
    --configfile (re-read to refuse duplicate keys, which Snakemake's loader drops silently).
    """
    try:
        for path in config_files:
            read_yaml(path)
        merged = deep_merge(dict(config), coerce_overrides(overrides or {}))
        params = validate(merged)
        runlock.refuse_if_changed(params, "this invocation", direct=False)  # reads only: a dry run is refused too
    except ConfigError as exc:
        print(f"lediflow: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    config.clear()
    config.update(params)
    folder = run_dir(params)
    return params, folder, folder / "params.yaml"
