"""The command-line options generated from the config dataclasses.

A config field declared with :func:`rsdistill.config.option` carries its flag, help and
default; :func:`add_section` turns a dataclass's fields into one argparse group. Every
generated option defaults to None ("not given"), so the dataclass holds the only
default: :func:`given` reads back just the values given, and the dataclass built from
them (or a base config overridden by them) fills in the rest. The help text states the
dataclass default, generated from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Iterable

from rsdistill.config import Option, cli_option

# Set on every generated argparse action: the (dataclass, field name) it fills.
SOURCE_ATTR = "config_field"


def shown_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def flags_of(f: dataclasses.Field, opt: Option) -> tuple[str, ...]:
    if opt.flags:
        return opt.flags
    name = f.name.replace("_", "-")
    return (f"--no-{name}",) if f.default is True else (f"--{name}",)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _scalar_type(annotation: Any) -> Any:
    """``int | None`` -> int; a union of several types (e.g. ``float | str``) -> str."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _text(value: Any) -> Any:
    """A help text, or one read from a registry when the parser is built."""
    return value() if callable(value) else value


def help_text(f: dataclasses.Field, opt: Option, note: str = "") -> str:
    """The option's help and, unless it is required or a switch, the default it gets."""
    text = _text(opt.help)
    if not opt.required and not isinstance(_field_default(f), bool):
        text += f" (default {_text(opt.shown) or shown_default(_field_default(f))}{note})"
    return text.replace("%", "%%")  # argparse formats help texts with %


def cli_fields(cls: type, scopes: Iterable[str] | None = None
               ) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of ``cls`` that are options in ``scopes`` (the empty scope always;
    None: every scope)."""
    allowed = None if scopes is None else {"", *scopes}
    return [(f, opt) for f in dataclasses.fields(cls) if (opt := cli_option(f)) is not None
            and (allowed is None or opt.scope in allowed)]


def add_section(parser: argparse.ArgumentParser, cls: type, title: str | None, *,
                scopes: Iterable[str] = (), only: Iterable[str] | None = None,
                overrides: dict[str, dict] | None = None,
                notes: dict[str, str] | None = None) -> argparse._ArgumentGroup:
    """One argparse group with an option per field of ``cls`` (in ``scopes``; only the
    fields named in ``only`` when given). ``overrides``: per field, the :class:`Option`
    attributes a command states otherwise (a flag, its help, ``required``). ``notes``:
    per field, text after the default in the help (e.g. a recipe's other default).
    ``title`` None: into ``parser`` itself (e.g. a group the command made)."""
    group = parser.add_argument_group(title) if title is not None else parser
    hints = typing.get_type_hints(cls)
    wanted = None if only is None else set(only)
    for f, opt in cli_fields(cls, scopes):
        if wanted is not None and f.name not in wanted:
            continue
        opt = dataclasses.replace(opt, **(overrides or {}).get(f.name, {}))
        kwargs: dict[str, Any] = {"dest": f.name, "default": None,
                                  "help": help_text(f, opt, (notes or {}).get(f.name, ""))}
        if isinstance(_field_default(f), bool):
            kwargs["action"] = "store_false" if f.default else "store_true"
        else:
            kwargs["type"] = opt.type or _scalar_type(hints[f.name])
            choices = _text(opt.choices)
            if choices is not None:
                kwargs["choices"] = list(choices)
            if opt.metavar:
                kwargs["metavar"] = opt.metavar
        if opt.required:
            kwargs["required"] = True
        action = group.add_argument(*flags_of(f, opt), **kwargs)
        setattr(action, SOURCE_ATTR, (cls, f.name))
    return group


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The values of ``cls``'s options given on the command line (None = not given)."""
    return {f.name: getattr(args, f.name) for f, _ in cli_fields(cls)
            if getattr(args, f.name, None) is not None}
