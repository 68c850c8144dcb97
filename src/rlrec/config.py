"""Configuration machinery: pydantic models loaded from YAML, dotted command-line overrides.

Every command takes ``--config FILE.yaml`` and any number of ``--set a.b=value`` overrides (the value
is parsed as YAML, so ``--set split.ratios=[0.7,0.2,0.1]`` and ``--set source.sample_sessions=null``
work). Unknown keys are errors. The resolved config is written beside every output
(:func:`dump_config`), so a result can always be traced to the exact settings that produced it.
"""

from __future__ import annotations

import functools
import operator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlrec.errors import ConfigError
from rlrec.fsutil import atomic_write_bytes, read_text


class StrictModel(BaseModel):
    """Base of all config models: unknown keys are rejected, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


M = TypeVar("M", bound=BaseModel)


def tagged_union(models: tuple[type[BaseModel], ...]) -> Any:
    """``Annotated[A | B | ..., Field(discriminator="kind")]``: a config section whose ``kind``
    field (a ``Literal`` with a default) picks the model."""
    return Annotated[functools.reduce(operator.or_, models), Field(discriminator="kind")]


def union_kinds(models: tuple[type[BaseModel], ...]) -> tuple[str, ...]:
    """The ``kind`` values of the models of a :func:`tagged_union`, in order."""
    return tuple(m.model_fields["kind"].default for m in models)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what went wrong and where (``line L, column C: problem``)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into the nested dict ``{"a": {"b": 1}, "c": [1, 2]}``."""
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}': expected KEY=VALUE, e.g. split.seed=1")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"override '{item}': value is not valid YAML ({yaml_problem(exc)})"
            ) from None
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override '{item}': '{part}' is set both as a value and a section"
                )
            node = child
        node[parts[-1]] = value
    return tree


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (``update`` wins)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


MAX_YAML_BYTES = 4 << 20
MAX_YAML_NODES = 100_000


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes of the document with every alias expanded (what a consumer walks), at most ``limit``
    + 1. Aliases make the node graph a DAG, so sizes are memoised per node; a cycle counts as
    over the limit."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            children = _children(node)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            return limit + 1  # a recursive alias
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml_text(text: str, origin: str) -> Any:
    """``yaml.safe_load`` for text rlrec did not write itself: at most :data:`MAX_YAML_BYTES` and
    :data:`MAX_YAML_NODES` nodes after alias expansion, so an "anchor bomb" is refused up front."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{origin}: YAML file larger than {MAX_YAML_BYTES >> 20} MiB")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(
                f"{origin}: YAML expands to more than {MAX_YAML_NODES:,} values through its "
                "aliases (&anchor/*alias); refused"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML ({yaml_problem(exc)})") from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing, non-UTF-8 or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: YAML file larger than {MAX_YAML_BYTES >> 20} MiB")
    data = load_yaml_text(read_text(path, "config file"), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError, origin: str) -> str:
    """One readable line per problem, naming the dotted key."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown config key '{key}'")
        else:
            lines.append(f"'{key}': {err['msg']}")
    return f"{origin}: invalid config: " + "; ".join(lines)


def build_config(
    model: type[M],
    *,
    path: Path | None = None,
    overrides: list[str] | None = None,
    cli: dict[str, Any] | None = None,
) -> M:
    """Build ``model`` from the YAML file ← command-line arguments ← ``--set`` overrides."""
    data: dict[str, Any] = {}
    origin = "command line"
    if path is not None:
        data = read_yaml(path)
        origin = str(path)
    if cli:
        data = deep_merge(data, cli)
    if overrides:
        data = deep_merge(data, parse_overrides(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None


def config_to_yaml(cfg: BaseModel) -> str:
    """The resolved config as YAML text (field order of the model, paths as strings)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def flatten_config(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config mapping as ``{"a.b.c": value}`` (lists are values, not descended into)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def dump_config(cfg: BaseModel, path: Path) -> None:
    """Write the resolved config atomically."""
    atomic_write_bytes(path, config_to_yaml(cfg).encode())
