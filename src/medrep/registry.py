"""One small registry for every named, pluggable thing: explanation methods, attack objectives and norms,
alignment estimators, projections, data sources and model schemes.

An entry is a name, the object it stands for (a function or a class) and its metadata (what a method
needs, whether an objective has a target, which options an estimator takes, ...).  The command line's
``choices`` and help, the audit configuration's schema and the analyses' branching all read the
registries, so adding a method / objective / estimator is one ``register`` call in one file.  Each analysis
package keeps its registries, and their ``register_*`` decorators, in its ``registry`` module
(``medrep.explain.registry``, ``medrep.robustness.registry``, ``medrep.align.registry``,
``medrep.features.registry``, ``medrep.overlay.registry``; ``medrep.data.registry``, ``medrep.models.registry``)::

    from medrep.explain.registry import register_method
    from medrep.registry import Option

    @register_method("saliency", options=[Option("absolute", bool, True, help="...")])
    def saliency(encoder, pixels, target, absolute=True): ...

A registry behaves as a read/write mapping from names to objects, so ``name in METHODS``,
``METHODS[name]`` and ``METHODS[name] = fn`` keep working.  Built-in entries living in other modules are
registered by importing those modules lazily, on the first look-up.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import warnings
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from medrep.errors import MedrepError, Param

_NO_DEFAULT = object()


@dataclass(frozen=True)
class Option:
    """One option of a registered entry, as front ends show it.

    ``flag``: the name the command line and the audit configuration use (``--flag`` / ``flag`` with hyphens as
    underscores); ``None`` lets the registry choose (``<entry>-<name>``).  ``type`` is the Python type a value is
    converted to (``bool``, ``int``, ``float``, ``str``); ``default`` the value when not given.
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    flag: str | None = None

    def convert(self, value: Any, where: Any = None) -> Any:
        """``value`` as this option's type (strings from a spec or a command line are parsed)."""
        if value is None or isinstance(value, self.type) and not (self.type is int and isinstance(value, bool)):
            out = value
        elif self.type is bool and isinstance(value, str):
            if value.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise MedrepError(f"expected true or false, got {value!r}", where=where or Param(self.name))
            out = value.strip().lower() in ("1", "true", "yes", "on")
        else:
            try:
                out = self.type(value)
            except (TypeError, ValueError):
                raise MedrepError(f"expected {self.type.__name__}, got {value!r}", where=where or Param(self.name)) from None
        if self.choices is not None and out is not None and out not in self.choices:
            raise MedrepError(f"{out!r} is not one of {', '.join(map(str, self.choices))}", where=where or Param(self.name))
        return out


@dataclass(frozen=True)
class Entry:
    """A registered name: the object, its metadata and its options."""

    name: str
    obj: Any
    meta: dict[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    help: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.meta[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)


class Registry(MutableMapping):
    """Names → objects with metadata.

    ``kind`` names what is registered in messages ("explanation method"); ``param`` is the parameter an unknown
    name is reported against (a :class:`Param`); ``builtins`` lists modules whose import registers the
    built-in entries (imported on first use, so ``import medrep`` stays cheap); ``meta_from`` reads default
    metadata off an object (e.g. class attributes), which explicit metadata overrides.
    """

    def __init__(self, kind: str, param: str | None = None, builtins: Sequence[str] = (),
                 meta_from: Callable[[Any], dict[str, Any]] | None = None, optional_builtins: bool = False):
        self.kind, self.param = kind, Param(param) if param else None
        self._builtins, self._optional = tuple(builtins), optional_builtins
        self._meta_from = meta_from
        self._entries: dict[str, Entry] = {}
        self._loading = False
        self._loaded = not self._builtins

    # -- registering ---------------------------------------------------------------------------------
    def register(self, name: str, obj: Any = _NO_DEFAULT, *, options: Sequence[Option] = (), help: str = "",
                 **meta: Any) -> Any:
        """``register(name, obj, **meta)``, or as a decorator ``@registry.register(name, **meta)``.

        Registering a name again replaces the entry, with a warning (a plug-in replacing a built-in on
        purpose can silence it with ``warnings.catch_warnings``)."""
        if obj is _NO_DEFAULT:
            def deco(fn: Any) -> Any:
                self.register(name, fn, options=options, help=help, **meta)
                return fn
            return deco
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if not self._loaded and not str(getattr(obj, "__module__", "")).startswith("medrep."):
            # a plug-in (anything outside medrep) lands after the built-ins: listed last, and a built-in it
            # replaces on purpose is not put back by the lazy import of the built-ins later
            self._load()
        if name in self._entries:
            warnings.warn(f"{self.kind} {name!r} registered again: the new one replaces {self._entries[name].obj!r}",
                          RuntimeWarning, stacklevel=3)
        merged = dict(self._meta_from(obj)) if self._meta_from else {}
        merged.update(meta)
        doc = help or _first_line(getattr(obj, "__doc__", None))
        self._entries[name] = Entry(name, obj, merged, tuple(options), doc)
        return obj

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def alias(self, name: str, target: str) -> None:
        """``name`` stands for the same object and metadata as ``target`` (listed separately)."""
        self._entries[name] = dataclasses.replace(self.entry(target), name=name)

    # -- looking up ----------------------------------------------------------------------------------
    def entry(self, name: str, where: Any = None) -> Entry:
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise MedrepError(self.unknown_message(name), where=where if where is not None else self.param) from None

    def get(self, name: str, default: Any = _NO_DEFAULT, where: Any = None) -> Any:  # type: ignore[override]
        """The object registered as ``name``; unknown names raise a MedrepError with a suggestion (or return
        ``default`` when one is given)."""
        if default is not _NO_DEFAULT:
            self._load()
            e = self._entries.get(name)
            return e.obj if e is not None else default
        return self.entry(name, where).obj

    def meta(self, name: str, key: str, default: Any = None) -> Any:
        return self.entry(name).meta.get(key, default)

    def names(self, where: Callable[[Entry], bool] | None = None, **meta: Any) -> tuple[str, ...]:
        """Registered names in registration order, filtered by metadata: ``names(needs_attention=True)``;
        an entry without the key counts as ``False`` / ``None``."""
        self._load()
        out = []
        for name, e in self._entries.items():
            if any(e.meta.get(k, None if v is not True and v is not False else False) != v for k, v in meta.items()):
                continue
            if where is not None and not where(e):
                continue
            out.append(name)
        return tuple(out)

    def entries(self) -> tuple[Entry, ...]:
        self._load()
        return tuple(self._entries.values())

    def unknown_message(self, name: Any) -> str:
        self._load()
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown {self.kind} {name!r} ({hint}choose from {', '.join(self._entries) or 'none'})"

    def check(self, name: str, where: Any = None) -> str:
        """``name`` when registered, else a MedrepError naming ``where`` (default: the registry's parameter)."""
        self.entry(name, where)
        return name

    # -- the mapping protocol (names → objects) ------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        self._load()
        return self._entries[name].obj

    def __setitem__(self, name: str, obj: Any) -> None:
        self.register(name, obj)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    def _load(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for mod in self._builtins:
                try:
                    importlib.import_module(mod)
                except ModuleNotFoundError as err:
                    # an optional extra that is not installed leaves its entries out; a broken import is a bug
                    if not (self._optional and err.name and not err.name.startswith("medrep")) and err.name != mod:
                        raise
            self._loaded = True
        finally:
            self._loading = False


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""


def option_flag(entry: Entry, option: Option) -> str:
    """The front-end name of an entry's option without dashes: its ``flag``, else ``<entry>-<option>``."""
    return option.flag or f"{entry.name}-{option.name.replace('_', '-')}"
