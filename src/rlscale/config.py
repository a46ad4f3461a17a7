"""YAML config files and `key=value` overrides: the one reader every config format shares
(training configs in rl/config.py, experiment specs in experiments/spec.py, the CLI)."""

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rlscale.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The mapping a YAML file holds (empty file: {}); errors name the file."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the {what} must be a mapping of keys to values")
    return raw


def validate_file(model: type[Model], raw: dict[str, Any], path: str | Path) -> Model:
    """`model` validated from a file's mapping; the first error names the file and the key."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        key, message = first_error(e)
        raise ConfigError(f"{path}: key '{key}': {message}") from None


def first_error(error: ValidationError) -> tuple[str, str]:
    """(dotted key, message) of a pydantic error's first problem: what our errors name."""
    first = error.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` -> (key, value parsed as YAML, so `lr=1e-4` is a float and `tiers=[1,2]` a list)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{item}': expected key=value")
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"override '{key}': value is not valid YAML: {e}") from None
