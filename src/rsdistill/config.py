"""Typed config sections built from plain dicts (YAML or CLI), with strict validation.

Unknown keys and wrong types are one-line :class:`ConfigError` s naming the key,
so a typo in a config file never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import yaml

from rsdistill.errors import ConfigError

T = TypeVar("T")

# The metadata key under which a config field carries its command-line option.
CLI_KEY = "cli"


@dataclasses.dataclass(frozen=True)
class Option:
    """How a config field appears on the command line; the default is the field's own.

    ``flags``: the option strings (default ``--field-name``; for a bool field defaulting
    to True, ``--no-field-name``). ``type``: the argparse type (default: read from the
    annotation). ``help``, ``shown`` and ``choices`` may be callables, read when a parser
    is built (from a registry filled later). ``shown``: the default as the help text states it, where the value alone
    would mislead (None standing for "from the environment"). ``scope``: the commands
    that offer it (``""``: every command reading the section; ``"training"``: only those
    that train; ``"distill"``: only those that distil). ``required``: the option must be
    given (commands may override it).
    """

    help: str | Callable[[], str]
    flags: tuple[str, ...] = ()
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    metavar: str | None = None
    shown: str | Callable[[], str] | None = None
    scope: str = ""
    required: bool = False


def option(default: Any = dataclasses.MISSING, *, help: str | Callable[[], str],  # noqa: A002
           flag: str | tuple[str, ...] = (), default_factory: Any = dataclasses.MISSING,
           **cli: Any) -> Any:
    """A dataclass field that is also a command-line option (see :class:`Option`): its
    default lives here and nowhere else; the CLI is generated from it."""
    flags = (flag,) if isinstance(flag, str) else tuple(flag)
    meta = {CLI_KEY: Option(help=help, flags=flags, **cli)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def cli_option(f: dataclasses.Field) -> Option | None:
    """The command-line option a config field declares, or None."""
    return f.metadata.get(CLI_KEY)


def _accepts(tp: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``tp``; returns the (possibly widened) value."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _accepts(arg, value)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is Any:
        return True, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(tp)
        item = args[0] if args else Any
        out = []
        for v in value:
            ok, v2 = _accepts(item, v)
            if not ok:
                return False, value
            out.append(v2)
        return True, (tuple(out) if origin is tuple or tp is tuple else out)
    if origin is dict or tp is dict:
        return isinstance(value, dict), value
    return isinstance(value, tp), value


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def from_dict(cls: type[T], data: dict | None, section: str) -> T:
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{section}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in config section '{section}': {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    values = {}
    for key, value in data.items():
        ok, v = _accepts(hints[key], value)
        if not ok:
            raise ConfigError(
                f"config key '{section}.{key}' must be {_type_name(hints[key])}, got {value!r}"
            )
        values[key] = v
    return cls(**values)


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int) -> None:
        super().__init__(f"duplicate key {key}")
        self.key, self.line = key, line


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only: a ``!!python`` tag is an error, never
    code), refusing a key given twice in one mapping, where PyYAML keeps the last."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML's own error says so
                break
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> Any:
    """The plain data of a YAML file; anything else is a one-line :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (not UTF-8); expected YAML") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as exc:
        raise ConfigError(f"{path} gives the key '{exc.key}' twice (line {exc.line}); keep "
                          "one of them") from None
    except yaml.constructor.ConstructorError as exc:
        # e.g. !!python/object tags: refused without constructing anything.
        raise ConfigError(f"{path} holds {exc.problem.split(' for ')[-1]}, which is not plain "
                          "YAML data; refused (nothing in it was run)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}: "
                          f"{getattr(exc, 'problem', None) or 'unreadable'}") from None


def read_record(path: str | Path, what: str, fix: str) -> dict:
    """A record this package wrote (a run's config.yaml, a sweep's sweep.yaml, ...), read
    strictly by :func:`read_yaml`; one that is empty or not a mapping was edited or
    damaged: a one-line :class:`ConfigError` naming ``what`` it should be and the ``fix``."""
    record = read_yaml(path)
    if not isinstance(record, dict) or not record:
        found = "is empty" if record in (None, {}) else f"holds a {type(record).__name__}"
        raise ConfigError(f"{path} {found}, not the record of {what}; it was edited or "
                          f"damaged: {fix}")
    return record
