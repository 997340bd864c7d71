"""Command-line options generated from a dataclass's fields, so that each default lives once: in the
field (the pattern of trl's ``SFTConfig``, whose fields carry their help and generate its parser).

A field becomes an option through its ``metadata``::

    learning_rate: float = field(default=2e-5, metadata={"flag": "--lr", "help": "learning rate"})

- ``help`` (required): the option's help; a default other than None/False is appended to it.
- ``flag``: the option's name (default ``--field-name``, underscores as dashes).
- ``choices``: the allowed values (default: a ``Literal`` annotation's values).
- ``parse``: turns the command-line text into the value; applied by ``build`` (inside the command, so
  its errors are the suite's one-line ``AfError``\\s), never to the default.

The annotation gives the type: ``int``, ``float``, ``str``, ``Literal[...]``, each also ``... | None``;
``tuple[X, ...]`` is read from a comma-separated list; ``bool`` is a switch — ``store_true``, or, for a
field that defaults to True, ``store_false`` under ``--no-field-name`` (or its ``flag``); ``bool | None``
defaulting to None (the code decides, e.g. by device) is a pair, ``--flag`` / ``--no-flag``. A field
without a default is a required option. ``build`` makes the dataclass back from the parsed arguments.

    add_options(parser, TrainConfig, skip=("base_model", "prompt"))
    config = build(TrainConfig, parser.parse_args(argv), base_model=base)
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal, Union

__all__ = ["add_option", "add_options", "build", "option_fields"]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` → ``X`` (any other union is not an option type)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            raise TypeError(f"no option type for the union {annotation}")
        return members[0]
    return annotation


def _scalar(annotation: Any) -> tuple[Callable[[str], Any], tuple | None]:
    """(argparse type, choices) of a scalar annotation."""
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    if annotation in (int, float, str):
        return annotation, None
    raise TypeError(f"no option type for {annotation!r}")


class _CommaList:
    """argparse ``type`` for ``tuple[X, ...]``: "1,4,16" → (1, 4, 16) (empty parts skipped)."""

    def __init__(self, item: Callable[[str], Any], choices: tuple | None):
        self.item, self.choices = item, choices
        self.__name__ = f"comma-separated {getattr(item, '__name__', 'value')}"

    def __call__(self, text: str) -> tuple:
        values = tuple(self.item(part.strip()) for part in text.split(",") if part.strip())
        if self.choices is not None and (bad := [v for v in values if v not in self.choices]):
            raise argparse.ArgumentTypeError(f"{bad} not among {', '.join(map(str, self.choices))}")
        return values


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _shown(value: Any) -> str | None:
    """A default as the help shows it (not None, and not a switch's: the flag says what it does)."""
    if value is None or isinstance(value, bool) or value is dataclasses.MISSING:
        return None
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or None
    return str(value)


def _metavar(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_").upper()


def add_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    name: str,
    *,
    flag: str | None = None,
    dest: str | None = None,
    help: str | None = None,
) -> argparse.Action:
    """The option of field ``name`` of dataclass ``cls`` (``flag``, ``dest`` and ``help`` override
    the field's; ``dest`` defaults to the field's name, which is what ``build`` reads)."""
    f = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if f is None:
        raise TypeError(f"{cls.__name__} has no field {name!r}")
    text = help or f.metadata.get("help")
    if not text:
        raise TypeError(f"{cls.__name__}.{name}: an option needs metadata['help']")
    default = _default(f)
    annotation = _unwrap_optional(_hints(cls)[name])
    kwargs: dict[str, Any] = {"dest": dest or name}
    if annotation is bool and default is None:
        flag = flag or f.metadata.get("flag") or f"--{name.replace('_', '-')}"
        kwargs |= {"action": argparse.BooleanOptionalAction, "default": None}
    elif annotation is bool:
        off = default is True
        flag = flag or f.metadata.get("flag") or f"--{'no-' if off else ''}{name.replace('_', '-')}"
        kwargs |= {"action": "store_false" if off else "store_true", "default": bool(default)}
    else:
        flag = flag or f.metadata.get("flag") or f"--{name.replace('_', '-')}"
        choices = f.metadata.get("choices")
        if typing.get_origin(annotation) is tuple:
            item, ellipsis = typing.get_args(annotation)
            if ellipsis is not Ellipsis:
                raise TypeError(f"{cls.__name__}.{name}: only tuple[X, ...] is an option type")
            item_type, item_choices = _scalar(_unwrap_optional(item))
            kwargs["type"] = str if "parse" in f.metadata else _CommaList(item_type, choices or item_choices)
            kwargs["metavar"] = f"{_metavar(flag)}[,...]"
        else:
            scalar, literal = _scalar(annotation)
            kwargs["type"] = str if "parse" in f.metadata else scalar
            if choices or literal:
                kwargs["choices"] = tuple(choices or literal)
            else:
                kwargs["metavar"] = _metavar(flag)
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
    shown = _shown(default) if not kwargs.get("required") else None
    text = text.replace("%", "%%") + (f" (default: {shown.replace('%', '%%')})" if shown else "")
    return parser.add_argument(flag, help=text, **kwargs)


def option_fields(cls: type, *, skip: Iterable[str] = (), only: Iterable[str] | None = None) -> list[str]:
    """The fields of ``cls`` that ``add_options`` turns into options, in field order."""
    skip, only = set(skip), None if only is None else set(only)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = (skip | (only or set())) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    return [n for n in names if n not in skip and (only is None or n in only)]


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> list[str]:
    """One option per field of dataclass ``cls`` (all but ``skip``, or just ``only``); the field
    names, which are also the options' ``dest``."""
    names = option_fields(cls, skip=skip, only=only)
    for name in names:
        add_option(parser, cls, name)
    return names


def build(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """``cls`` from parsed arguments: ``given`` values first, then every field that is an argument of
    ``args`` (its ``parse`` applied to command-line text), then the field's own default."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in given:
            values[f.name] = given[f.name]
        elif hasattr(args, f.name):
            value = getattr(args, f.name)
            parse = f.metadata.get("parse")
            values[f.name] = parse(value) if parse is not None and isinstance(value, str) else value
    unknown = set(given) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    return cls(**values)
