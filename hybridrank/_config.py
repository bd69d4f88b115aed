"""Building frozen config dataclasses from user-facing mappings (YAML sections)."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from hybridrank.errors import ConfigError, DataFormatError, MissingInputError

T = TypeVar("T")

#: A number in exponent notation that YAML 1.1 (PyYAML) leaves as text: ``1e-4``, ``-2E+3``.
_YAML11_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def unknown_keys_error(
    section: str, unknown: Iterable[Any], known: Iterable[str], *, noun: str = "keys"
) -> ConfigError:
    """``section: unknown keys [...] (did you mean ...?); known keys are [...]``.

    A misspelt key gets the closest known one named (``seedz`` -> ``seeds``).
    """
    unknown = sorted(map(str, unknown))
    known = sorted(map(str, known))
    hints = [
        f"{close[0]!r} for {key!r}"
        for key in unknown
        if (close := difflib.get_close_matches(key, known, n=1, cutoff=0.6))
    ]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    return ConfigError(f"{section}: unknown {noun} {unknown}{hint}; known {noun} are {known}")


def as_mapping(values: Any, section: str) -> dict[str, Any]:
    """``values`` as a dict (None: empty); anything but a mapping is a ConfigError naming ``section``."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{section}: expected a mapping of keys, got {type(values).__name__}")
    return dict(values)


def config_from_dict(cls: type[T], values: Mapping[str, Any] | None, section: str) -> T:
    """Instantiate ``cls`` from a mapping, checking every key and value type.

    Unknown keys are rejected by name; values are checked against the field's
    annotation (``int``, ``float``, ``str``, ``bool``, ``X | None``,
    ``tuple[X, ...]``, ``Literal[...]``, a nested config dataclass); YAML
    lists become tuples, since
    configs are frozen and hashable. Every failure is a :class:`ConfigError`
    naming ``section.key``.
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{section}: expected a mapping of keys, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(map(str, set(values) - set(fields)))
    if unknown:
        raise unknown_keys_error(section, unknown, fields)
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{section}: {exc}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        # A nested config section: read by the same rules, errors naming the full path.
        if isinstance(value, hint):
            return value
        return config_from_dict(hint, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
            # PyYAML follows YAML 1.1, which reads `1e-4` (no dot) as text; YAML 1.2 and
            # every user mean the number (configs read by `yaml_load` arrive as floats).
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{where}: {value!r} is out of range")
            return number
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """The YAML-ready form of a config dataclass: tuples become lists."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def in_file(path: str | Path, parse: Callable[[], T]) -> T:
    """``parse()``, with a ConfigError it raises prefixed by the config file's path."""
    try:
        return parse()
    except ConfigError as exc:
        raise ConfigError(f"{Path(path)}: {exc}") from None


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that reads numbers as YAML 1.2 does: ``1e-4`` and ``1.5e3`` are floats.

    PyYAML follows YAML 1.1, whose float needs a dot and a signed exponent, so it reads
    ``learning_rate: 1e-4`` as the text ``"1e-4"``. Every config and KEY=VALUE flag goes
    through this loader instead.
    """
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: no arbitrary objects


@functools.cache
def _yaml_loader() -> Any:
    """PyYAML's SafeLoader plus the YAML 1.2 float rule (built once, on first use)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML11_EXPONENT, list("-+0123456789."))
    return Loader


def read_yaml_mapping(path: str | Path, *, section: str | None = None) -> dict[str, Any]:
    """A YAML file's top-level mapping (or its ``section`` when present), with errors naming the file.

    Raises:
        FileNotFoundError: The file does not exist.
        ConfigError: Not YAML, or not a mapping at the top level.
    """
    import yaml

    p = Path(path)
    try:
        raw = yaml_load(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise MissingInputError(f"{p}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a YAML config file") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}, line {line}: not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r}); "
            "save the file as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}{where}: not valid YAML ({problem})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping of sections at the top level")
    raw = dict(raw or {})
    if section is not None:
        # A misspelt section name would be ignored beside the section, or read as its keys.
        typo = next(
            (
                k
                for k in map(str, raw)
                if k != section and difflib.get_close_matches(k, [section], n=1, cutoff=0.75)
            ),
            None,
        )
        if typo is not None:
            raise ConfigError(f"{p}: top-level key {typo!r}: did you mean {section!r}?")
    if section is not None and section in raw:
        inner = raw[section]
        if inner is not None and not isinstance(inner, dict):
            raise ConfigError(f"{p}: section {section!r} must be a mapping")
        return dict(inner or {})
    return raw


def read_json(path: str | Path, what: str) -> Any:
    """A JSON file's content; a missing file or malformed JSON is an error naming the file."""
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(f"{p}: no saved {what}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataFormatError("not UTF-8 text", path=p) from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"not JSON: {exc}", path=p) from None
