"""Load, merge, override and validate params.yaml against its JSON schema.

Config files are overlays: the schema's defaults are the base, each file given
with --config is deep-merged on top in order (as Snakemake merges
--configfile), then each --set key.path=value. The result is validated before
any compute; a violation raises ConfigError with one line naming the key, the
bad value and what is allowed.
"""

from __future__ import annotations

import copy
import math
import re
from importlib import resources
from pathlib import Path
from collections.abc import Hashable
from typing import Any, Iterable, Iterator

import jsonschema
import yaml

from lediflow.core.errors import ConfigError
from lediflow.pipeline.checks import check_params  # the rules the schema cannot state (geometry, sweep)
from lediflow.pipeline.paths import Params



def load_schema() -> dict[str, Any]:
    text = resources.files("lediflow").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.safe_load(text)


def deep_merge(base: Params, overlay: Params) -> Params:
    """Recursive dict update; overlay wins, nested dicts are merged key by key."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, "found unhashable key", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (first on line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)
# YAML 1.1 (PyYAML) reads 1e-4 as text, YAML 1.2 as a number: a learning rate written the common way is a number.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml_text(text: str) -> Any:
    """yaml.safe_load, but a duplicate key is an error."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: str | Path) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass an existing YAML file with --config")
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8") from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}" if mark else ""
        if "unhashable" in str(exc.problem):
            raise ConfigError(f"config file {path}{where}: a key is a list or mapping; keys are plain names") from None
        raise ConfigError(f"config file {path}{where}: {exc.problem}; keep one of them") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML; fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def parse_set(assignment: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (['a','b','c'], value parsed as YAML)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r} needs the form key.path=value, e.g. --set data.resolution=64")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r} has an empty key; use key.path=value")
    try:
        value = load_yaml_text(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_set(params: Params, assignment: str) -> Params:
    parts, value = parse_set(assignment)
    out = copy.deepcopy(params)
    node = out
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value
    return out


def _filling_validator() -> type:
    """A validator class that also fills schema defaults (jsonschema's documented recipe)."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator[Any]:
        if isinstance(instance, dict):
            for prop, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(prop, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def _allowed(error: jsonschema.ValidationError) -> str:
    schema = error.schema
    kind = error.validator
    if kind == "enum":
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if kind == "type":
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return "a value of type " + " or ".join(types)
    bounds = {
        "minimum": ">= {}",
        "maximum": "<= {}",
        "exclusiveMinimum": "> {}",
        "exclusiveMaximum": "< {}",
        "minItems": "at least {} items",
        "maxItems": "at most {} items",
        "pattern": "text matching {}",
        "minLength": "at least {} characters",
    }
    if kind in bounds:
        return bounds[kind].format(error.validator_value)
    return error.message


def _format_error(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f"{key}." if error.absolute_path else ""
        return (
            f"params error: unknown key {where}{extra[0]}; allowed keys here are "
            + ", ".join(allowed)
        )
    return f"params error: {key} = {error.instance!r} is not allowed; expected {_allowed(error)}"


def _finite(node: Any, key: str = "") -> None:
    """NaN and infinity pass every bound of a JSON schema (comparisons with NaN are false): refuse them here."""
    if isinstance(node, dict):
        for name, value in node.items():
            _finite(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _finite(value, f"{key}.{index}")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"params error: {key} = {node!r} is not allowed; expected a finite number "
                          "(fix it in the config file or with --set)")


def _whole_numbers_as_integers(node: Any, schema: dict) -> Any:
    """32.0 where the schema wants an integer becomes 32, so every stage sees the type the schema states."""
    kind = schema.get("type")
    if isinstance(node, float) and node.is_integer() and (kind == "integer" or
                                                           (isinstance(kind, list) and "integer" in kind)):
        return int(node)
    if isinstance(node, dict) and "properties" in schema:
        return {k: _whole_numbers_as_integers(v, schema["properties"].get(k, {})) for k, v in node.items()}
    if isinstance(node, list) and isinstance(schema.get("items"), dict):
        return [_whole_numbers_as_integers(v, schema["items"]) for v in node]
    return node


def validate(params: Params) -> Params:
    """Fill defaults and validate; returns a new dict or raises ConfigError."""
    _finite(params)
    schema = load_schema()
    filled = _whole_numbers_as_integers(copy.deepcopy(params), schema)
    validator = _filling_validator()(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(filled))
    if error is not None:
        raise ConfigError(_format_error(error) + " (fix it in the config file or with --set)")

    check_params(filled)
    return filled


def load_params(config_files: Iterable[str | Path] = (), sets: Iterable[str] = ()) -> Params:
    """Schema defaults <- each config file in order <- each --set; validated."""
    params: Params = {}
    for path in config_files:
        params = deep_merge(params, read_yaml(path))
    for assignment in sets:
        params = apply_set(params, assignment)
    return validate(params)


