"""Spec strings shared by the model and data registries: ``scheme:name[@weights][?key=value&...]``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from medrep.errors import SpecError


@dataclass(frozen=True)
class Spec:
    raw: str
    scheme: str | None  # "timm", "hf", "open_clip", … or None for bare names / paths
    name: str
    weights: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_spec(raw: str, schemes: tuple[str, ...]) -> Spec:
    if not isinstance(raw, str) or not raw.strip():
        raise SpecError("empty spec", where="spec")
    text = raw.strip()
    options: dict[str, str] = {}
    if "?" in text:
        text, query = text.split("?", 1)
        try:
            options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
        except ValueError as err:
            raise SpecError(f"malformed options {query!r} ({err})", where=raw) from None
    scheme = None
    head, sep, rest = text.partition(":")
    if sep and head in schemes:
        scheme, text = head, rest
    weights = None
    if "@" in text and scheme is not None:
        text, weights = text.rsplit("@", 1)
    if not text:
        raise SpecError("spec names nothing after its scheme", where=raw)
    return Spec(raw=raw, scheme=scheme, name=text, weights=weights or None, options=options)


def take_int_option(options: dict[str, str], key: str, what: str = "an integer", cast: type = int) -> Any:
    """Pop ``key`` from spec options as ``cast`` (int by default; None when absent); a value that does not
    convert is a SpecError at ``?key``."""
    if key not in options:
        return None
    raw = options.pop(key)
    try:
        return cast(raw)
    except ValueError:
        raise SpecError(f"{key} must be {what}, got {raw!r}", where=f"?{key}") from None


def take_float_option(options: dict[str, str], key: str, what: str = "a number") -> float | None:
    """:func:`take_int_option` for a float."""
    return take_int_option(options, key, what, cast=float)


def take_list_option(options: dict[str, str], key: str) -> list[str] | None:
    """Pop ``key`` from spec options as a comma-separated list of stripped names (None when absent)."""
    return [v.strip() for v in options.pop(key).split(",")] if key in options else None
