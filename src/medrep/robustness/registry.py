"""The registries of the robustness analysis and their decorators: attack objectives (built-ins in
:mod:`medrep.robustness.objectives`) and norms (the PGD attack of each geometry, built-ins in
:mod:`medrep.robustness.attacks`), both registered on the first look-up.

An objective's metadata is read off its class: ``uses_target`` (needs an image / centroid of another class),
``wants_random_start`` (zero gradient at δ = 0), ``needs_head`` (reads the model's logits) and ``criterion``, the
success criterion of early exit (``target-matched`` or ``misclassified``); keywords given to
:func:`register_objective` override it.
"""
from __future__ import annotations

from typing import Any

from medrep.registry import Registry

#: name → Objective class
OBJECTIVES = Registry("objective", param="objective", builtins=("medrep.robustness.objectives",),
                      meta_from=lambda cls: {
                          "uses_target": bool(getattr(cls, "uses_target", False)),
                          "wants_random_start": bool(getattr(cls, "wants_random_start", False)),
                          "needs_head": bool(getattr(cls, "needs_head", False)),
                          "criterion": getattr(cls, "criterion", "misclassified")})
#: norm → the PGD attack (a GradientAttack subclass) with that geometry; its help is the class's first doc line
NORMS = Registry("norm", param="norm", builtins=("medrep.robustness.attacks",))


def register_objective(name: str, **meta: Any):
    """Class decorator: ``@register_objective("name")`` makes the Objective available to attack and the audit."""
    return OBJECTIVES.register(name, help=meta.pop("help", ""), **meta)


def register_norm(name: str, **meta: Any):
    """Class decorator: ``@register_norm("l1")`` on a ``GradientAttack`` subclass makes ``--norm l1`` run it."""
    return NORMS.register(name, help=meta.pop("help", ""), **meta)
