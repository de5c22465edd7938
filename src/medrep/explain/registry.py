"""The registry of explanation methods and its decorator; the built-in methods live in
:mod:`medrep.explain.methods` and are registered on the first look-up.

A method is ``fn(encoder, pixels, target, **options) -> (B, h, w)`` raw maps at any resolution.  Its metadata:
``needs_attention`` (reads a ViT's attention: skipped on CNNs by the audit), ``default`` (run when no method is
named), ``baseline`` (a reference map, added unless told not to), ``supports`` (``supports(encoder)`` → None when
the method can explain the encoder, else the reason it cannot, known before any work) and the options the front
ends expose (command-line flags, audit keys).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from medrep.registry import Option, Registry

Method = Callable[..., Any]  # (encoder, pixels, target, **options) -> (B, h, w) tensor
METHODS = Registry("explanation method", param="methods", builtins=("medrep.explain.methods",))


def register_method(name: str, *, options: Sequence[Option] = (), needs_attention: bool = False, default: bool = False,
                    baseline: bool = False, **meta: Any) -> Callable[[Method], Method]:
    """Register ``fn(encoder, pixels, target, **options) -> (B, h, w)`` maps under ``name``.

    ``options`` are the keyword options the command line (``--<flag>``) and the audit expose; the method may
    take more keywords, reachable from Python through ``method_options``."""
    return METHODS.register(name, options=options, needs_attention=needs_attention, default=default,
                            baseline=baseline, **meta)


def get_method(name: str) -> Method:
    return METHODS.get(name)


def unsupported_reason(encoder: Any, method: str) -> str | None:
    """Why ``method`` cannot explain ``encoder`` (None when it can), decided from the model's structure alone."""
    check = METHODS.meta(method, "supports")
    return check(encoder) if check is not None else None


def default_methods(baselines: bool = True) -> tuple[str, ...]:
    """The methods run when none are named (with or without the baselines)."""
    return tuple(m for m in METHODS.names(default=True) if baselines or not METHODS.meta(m, "baseline"))


def attention_methods() -> tuple[str, ...]:
    return METHODS.names(needs_attention=True)


def baseline_methods() -> tuple[str, ...]:
    return METHODS.names(baseline=True)
