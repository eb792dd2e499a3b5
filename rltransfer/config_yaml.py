"""A config's YAML: files read and ``--set`` overrides applied, each refusal naming the file or override, where
and what is wrong. What the mapping means is :mod:`rltransfer.config`'s."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from rltransfer.errors import ConfigError


class _ConfigLoader(yaml.SafeLoader):
    """YAML as a config means it: ``1e-4`` and ``3e5`` are numbers, as in Python and in YAML 1.2. PyYAML follows
    YAML 1.1, whose floats need a dot and a signed exponent (``1.0e-4``), and read them as strings, which
    configs written from SB3 habits then had refused ("'1e-4' is not a number")."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """A config's YAML (a file's or a ``--set`` value's), numbers in exponent notation read as numbers."""
    return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: no Python objects


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> (``["a", "b"]``, value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected KEY=VALUE, e.g. --set transfer.seeds=20")
    key, _, raw = text.partition("=")
    path = [p for p in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set '{text}': empty part in key '{key}'")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set '{text}': value is not valid YAML: {_yaml_error(err)}") from None
    return path, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with ``KEY=VALUE`` strings (or a ``{dotted.key: value}`` map) applied."""
    if isinstance(overrides, (str, bytes)):  # iterated, it would be one override per character
        raise ConfigError(
            f"overrides: a list of KEY=VALUE strings, not one string (got {overrides!r}: write [{overrides!r}])"
        )
    data = copy.deepcopy(data)
    items = (
        [(k.split("."), v) for k, v in overrides.items()]
        if isinstance(overrides, Mapping)
        else [parse_override(o) for o in overrides]
    )
    for path, value in items:
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(path)}: '{'.'.join(path[: i + 1])}' is not a mapping")
            node = child
        node[path[-1]] = value
    return data


def _yaml_error(err: yaml.YAMLError) -> str:
    """One line: where and what (PyYAML's own message spans several lines)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file; a clear error for a missing file or bad YAML."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"'{path}' is a directory; a config is a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    try:
        data = load_yaml(path.read_text())
    except OSError as err:
        raise ConfigError(f"config file '{path}' cannot be read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{path}' is not UTF-8 text") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file '{path}' is not valid YAML: {_yaml_error(err)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys, got {type(data).__name__}")
    return data
