"""What an attack optimises: a representation of the encoder and a loss on it.

``Representation`` says *which* vector f(x) is attacked (any layer / pooling the Encoder offers, or a
user callable such as a MIL-style pooled head).  An ``Objective`` turns f(x′) and a per-item reference
vector into a per-item loss to *minimise*; a new objective overrides ``reference`` and ``loss``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from medrep.errors import MedrepError
from medrep.models.base import Encoder
from medrep.registry import Registry

EmbedFn = Callable[[Encoder, torch.Tensor], torch.Tensor]  # (encoder, raw pixels) → (B, D)


@dataclass(frozen=True)
class Representation:
    """f(x): ``encoder.embed(x, layer, pool)``, or ``fn(encoder, x)`` for custom pooling (e.g. MIL heads)."""

    layer: str | None = None
    pool: str | None = None
    fn: EmbedFn | None = None

    def __call__(self, encoder: Encoder, pixels: torch.Tensor) -> torch.Tensor:
        if self.fn is not None:
            with encoder.analysis_state():  # a custom fn may call the module directly
                z = self.fn(encoder, pixels)
        else:
            z = encoder.embed(pixels, layer=self.layer, pool=self.pool)
        if z.ndim != 2:
            # Token / map outputs are flattened so the distance covers every coordinate.
            z = z.flatten(1)
        return z

    def describe(self) -> dict:
        return {"layer": self.layer, "pool": self.pool,
                "fn": getattr(self.fn, "__qualname__", repr(self.fn)) if self.fn is not None else None}


class Objective:
    """Per-item loss to minimise, given f(x′) and a reference vector chosen by ``reference``."""

    name = "objective"
    uses_target = False  # whether the reference is the target's representation
    #: At δ = 0 some objectives have a zero gradient (push): they need a random start by default.
    wants_random_start = False

    def reference(self, clean: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, z: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


#: name → Objective class; its metadata (``uses_target``, ``wants_random_start``) is read off the class.
OBJECTIVES = Registry("objective", param="objective", meta_from=lambda cls: {
    "uses_target": bool(getattr(cls, "uses_target", False)),
    "wants_random_start": bool(getattr(cls, "wants_random_start", False))})


def register_objective(name: str, **meta):
    """Class decorator: ``@register_objective("name")`` makes the Objective available to attack and the audit."""
    return OBJECTIVES.register(name, help=meta.pop("help", ""), **meta)


@register_objective("collide", help="pull f(x) onto an image of another class (PRM)")
class Collide(Objective):
    """PRM: minimise ½‖f(x₀+δ) − f(x_tg)‖² towards a target of another class."""

    name = "collide"
    uses_target = True

    def reference(self, clean, target):
        if target is None:
            raise MedrepError("the collide objective needs a target representation", where="--objective")
        return target

    def loss(self, z, reference):
        return 0.5 * _squared_distance(z, reference)


@register_objective("push", help="move f(x) away from itself")
class Push(Objective):
    """Divergence: maximise ‖f(x₀+δ) − f(x₀)‖, written as minimising −½‖·‖² (same maximiser, smooth at 0)."""

    name = "push"
    wants_random_start = True

    def reference(self, clean, target):
        return clean

    def loss(self, z, reference):
        return -0.5 * _squared_distance(z, reference)


def _squared_distance(z: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """‖z − reference‖² per item in (at least) float32: summed in float16, features of norm ~300 already
    overflow to inf.  The cast is differentiable, so the gradient still reaches a half-precision input."""
    dtype = torch.promote_types(torch.promote_types(z.dtype, reference.dtype), torch.float32)
    return (z.to(dtype) - reference.to(dtype)).pow(2).sum(dim=1)


def make_objective(objective: str | Objective) -> Objective:
    if isinstance(objective, Objective):
        return objective
    key = str(objective)
    key = key if key in OBJECTIVES else key.lower()
    made = OBJECTIVES.get(key)()
    if made.name == Objective.name:  # a registered class need not repeat its name
        made.name = key
    return made


def representation_loss(encoder: Encoder, representation: Representation, objective: Objective,
                        reference: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Close over everything fixed for one batch: x′ → per-item loss."""

    def loss_fn(x_adv: torch.Tensor) -> torch.Tensor:
        return objective.loss(representation(encoder, x_adv), reference)

    return loss_fn
