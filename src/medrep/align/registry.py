"""The registry of alignment estimators and its decorator; the built-in estimators live in
:mod:`medrep.align.estimators` and are registered on the first look-up.

An estimator is an ``Aligner`` subclass built as ``cls(ridge, **options)``; ``options`` are the keywords beyond
``ridge`` that the front ends expose (an option whose flag the command already has, such as ``seed``, reads that
flag).
"""
from __future__ import annotations

from typing import Any, Sequence

from medrep.registry import Option, Registry

#: name → Aligner class
ESTIMATORS = Registry("estimator", param="estimator", builtins=("medrep.align.estimators",))


def register_estimator(name: str, *, options: Sequence[Option] = (), help: str = "", **meta: Any):
    """Class decorator: ``@register_estimator("name")`` on an :class:`~medrep.align.estimators.Aligner` subclass."""
    return ESTIMATORS.register(name, options=options, help=help, **meta)
