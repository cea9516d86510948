"""Building typed config dataclasses from plain mappings (YAML, CLI overrides).

Every mistake is reported with the dotted path of the offending key, e.g.
``train.lr: expected a number, got 'fast'``. Numbers must be finite, and a field
declared with `setting` is checked against its range (or a check of its own) as it
is read, so that a value that parses but makes no sense never reaches a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from .errors import ConfigError

T = TypeVar("T")
_RULE = "magic_config_rule"


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a number (of every item of a tuple or list of numbers)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        parts = [f"{op} {bound:g}" for op, bound in ((">=", self.ge), (">", self.gt),
                                                     ("<=", self.le), ("<", self.lt))
                 if bound is not None]
        return " and ".join(parts)

    def holds(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))


def setting(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None,
            check: Callable[[Any], str | None] | None = None, hint: str = "") -> Any:
    """A dataclass field whose value `from_mapping` checks as it reads it.

    ``ge``/``gt``/``le``/``lt`` bound a number (None stays allowed where the type
    allows it); ``check(value)`` returns what is wrong with a value, or None;
    ``hint`` is added to the message (e.g. what to write instead).
    """
    rule = (Range(ge, gt, le, lt), check, hint)
    kwargs = {"default": default} if not isinstance(default, (list, dict, set)) else {
        "default_factory": lambda: type(default)(default)}
    return dataclasses.field(metadata={_RULE: rule}, **kwargs)


def field_range(f: dataclasses.Field) -> Range:
    """The bounds ``f`` was declared with by `setting` (none for a plain field)."""
    return f.metadata.get(_RULE, (Range(), None, ""))[0]


def _numbers(value: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(value, (list, tuple)):
        return [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    return [(path, value)]


def _check_numbers(value: Any, path: str, bounds: Range, hint: str = "") -> None:
    suffix = f"; {hint}" if hint else ""
    for where, number in _numbers(value, path):
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            continue
        # nan and inf parse (.nan, .inf, "nan") but no setting means them: a nan
        # learning rate trained to nan scores without a word.
        if not math.isfinite(number) or not bounds.holds(number):
            kind = "an integer" if isinstance(number, int) else "a finite number"
            wanted = f"{kind} {bounds.describe()}".strip()
            raise ConfigError(f"{where}: must be {wanted}, got {number!r}{suffix}")


def check_value(f: dataclasses.Field, value: Any, path: str) -> None:
    """Refuse a value outside the range (or failing the check) ``f`` was declared with,
    and any infinite or nan number."""
    if value is None:
        return
    bounds, check, hint = f.metadata.get(_RULE, (Range(), None, ""))
    _check_numbers(value, path, bounds, hint)
    problem = check(value) if check is not None else None
    if problem:
        raise ConfigError(f"{path}: {problem}{'; ' + hint if hint else ''}")


def read_value(value: Any, tp: Any, path: str, bounds: Range = Range()) -> Any:
    """``value`` read as a field of type ``tp`` is (a plugin's options, say): converted,
    and refused when of another type, not finite or out of ``bounds``."""
    converted = _convert(value, tp, path)
    if converted is not None:
        _check_numbers(converted, path, bounds)
    return converted


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}{hint}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")


def from_mapping(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and wrong types."""
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    # cast: T is any class to a type checker; callers pass dataclasses.
    fields = {f.name: f for f in dataclasses.fields(typing.cast(Any, cls))}
    # Keys a job file may still carry from an older version: each refused
    # with what became of it rather than a did-you-mean guess.
    renamed = getattr(cls, "RENAMED_KEYS", {})
    removed = getattr(cls, "REMOVED_KEYS", {})
    for key in data:
        where_key = f"{path + '.' if path else ''}{key}"
        if key in renamed and key not in fields:
            raise ConfigError(f"{where_key}: renamed to {renamed[key]!r}; "
                              f"write {path + '.' if path else ''}{renamed[key]} instead")
        if key in removed and key not in fields:
            raise ConfigError(f"{where_key}: removed ({removed[key]}); delete it from the job file")
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
            raise ConfigError(f"{path + '.' if path else ''}{key}: unknown key{hint}")
    kwargs = {}
    for name, f in fields.items():
        key_path = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key_path)
            check_value(f, kwargs[name], key_path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key_path}: missing required key")
    return cls(**kwargs)


def to_mapping(obj: Any) -> Any:
    """The inverse of `from_mapping`: plain dicts, lists and scalars (for JSON/YAML)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj
