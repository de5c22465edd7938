"""One frozen dataclass per analysis entry point, and the one naming rule that ties it to the front ends.

A config field is an analysis parameter; its name is the audit-YAML key and, with hyphens for underscores
and two leading dashes, the command-line flag (``n_permutations`` ↔ ``--n-permutations``).  Field metadata
says where a field differs: ``flag`` (the flag's name when it is not the field's, e.g. a repeatable
``--layer`` for the list ``layers``), ``key`` (the YAML key), ``negate`` for a switch whose flag turns the
field off (``--no-scale`` for ``scale``), ``cli=False`` / ``audit=False`` for a field one front end sets by
itself.  :func:`check_front_ends` is what the tests call to prove that every field is reachable from both;
:func:`from_mapping` builds a config from parsed flags or a YAML section.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, TypeVar

from medrep.errors import MedrepError, Param

C = TypeVar("C")


def setting(default: Any = None, help: str = "", *, flag: str | None = None, key: str | None = None, cli: bool = True,
            audit: bool = True, negate: bool = False, default_factory: Any = None) -> Any:
    """A config field with the metadata the front ends read."""
    meta = {"help": help, "flag": flag, "key": key, "cli": cli, "audit": audit, "negate": negate}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def fields_of(config_type: type) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(config_type)


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a field, with its dashes."""
    return "--" + (field.metadata.get("flag") or field.name).replace("_", "-")


def key_of(field: dataclasses.Field) -> str:
    """The audit-YAML key of a field (a negated switch's key is its flag's: ``no_scale``)."""
    return field.metadata.get("key") or (dest_of(field) if field.metadata.get("negate") else field.name)


def dest_of(field: dataclasses.Field) -> str:
    """Where argparse keeps the field's flag (``--n-permutations`` → ``n_permutations``)."""
    return flag_of(field)[2:].replace("-", "_")


def from_mapping(config_type: type[C], values: Mapping[str, Any], *, by: str = "name", **overrides: Any) -> C:
    """A config from a mapping keyed by field name (``by="name"``), argparse dest (``"dest"``) or YAML key
    (``"key"``); absent entries keep their defaults, ``overrides`` win.  A negated switch (``--no-scale``, YAML
    ``no_scale``) sets its field to the opposite."""
    name_of = {"name": lambda f: f.name, "dest": dest_of, "key": key_of}[by]
    kwargs = {f.name: (not values[name_of(f)]) if by != "name" and f.metadata.get("negate") else values[name_of(f)]
              for f in fields_of(config_type) if name_of(f) in values}
    kwargs.update(overrides)
    return config_type(**kwargs)


def replace(config: C, **changes: Any) -> C:
    """``dataclasses.replace`` that names an unknown field as a parameter error."""
    known = {f.name for f in fields_of(type(config))}
    for name in changes:
        if name not in known:
            raise MedrepError(f"{type(config).__name__} has no setting {name!r} (it has {', '.join(sorted(known))})",
                              where=Param(name))
    return dataclasses.replace(config, **changes)


def check_front_ends(config_type: type, flags: Iterable[str], keys: Iterable[str]) -> list[str]:
    """What keeps a field out of reach: a field with no flag among ``flags`` or no key among ``keys``
    (unless marked ``cli=False`` / ``audit=False``).  Empty when every field is reachable from both."""
    flags, keys = set(flags), set(keys)
    problems = []
    for f in fields_of(config_type):
        if f.metadata.get("cli", True) and flag_of(f) not in flags:
            problems.append(f"{config_type.__name__}.{f.name}: no flag {flag_of(f)}")
        if f.metadata.get("audit", True) and key_of(f) not in keys:
            problems.append(f"{config_type.__name__}.{f.name}: no audit key {key_of(f)!r}")
    return problems
