"""What an attack optimises: a representation of the encoder (or its logits) and a loss on it.

``Representation`` says *which* vector f(x) is attacked (any layer / pooling the Encoder offers, or a
user callable such as a MIL-style pooled head).  An ``Objective`` turns f(x′) and a per-item reference
(a vector, or the label for the logit losses) into a per-item loss to *minimise*; a new objective overrides
``reference`` and ``loss`` (and ``features`` to read something other than the representation).  Its metadata:
``uses_target`` (needs an image / centroid of another class), ``needs_head`` (reads the model's logits),
``wants_random_start`` (zero gradient at δ = 0) and ``criterion``, the registered success criterion used for
early exit: ``target-matched`` (classified as the target's class) or ``misclassified``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from medrep.errors import MedrepError, Param
from medrep.models.base import Encoder
# the registry lives in medrep.robustness.registry; imported here for the objectives below and for callers that
# know it by this module
from medrep.robustness.registry import OBJECTIVES, register_objective  # noqa: F401

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
    needs_head = False  # a loss on the model's logits
    criterion = "misclassified"  # success criterion for early exit (see criteria.CRITERIA)

    def features(self, encoder: Encoder, representation: Representation, pixels: torch.Tensor) -> torch.Tensor:
        """What the loss reads: the attacked representation (the logit losses: the logits)."""
        return representation(encoder, pixels)

    def reference(self, clean: torch.Tensor, target: torch.Tensor | None, labels: torch.Tensor | None = None
                  ) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, z: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register_objective("collide", help="pull f(x) onto an image of another class (PRM)")
class Collide(Objective):
    """PRM: minimise ½‖f(x₀+δ) − f(x_tg)‖² towards a target of another class."""

    name = "collide"
    uses_target = True
    criterion = "target-matched"

    def reference(self, clean, target, labels=None):
        if target is None:
            raise MedrepError("the collide objective needs a target representation", where=Param("objective"))
        return target

    def loss(self, z, reference):
        return 0.5 * _squared_distance(z, reference)


@register_objective("push", help="move f(x) away from itself")
class Push(Objective):
    """Divergence: maximise ‖f(x₀+δ) − f(x₀)‖, written as minimising −½‖·‖² (same maximiser, smooth at 0)."""

    name = "push"
    wants_random_start = True

    def reference(self, clean, target, labels=None):
        return clean

    def loss(self, z, reference):
        return -0.5 * _squared_distance(z, reference)


@register_objective("collide-cosine", help="collide by angle: 1 − cos to the target's representation")
class CollideCosine(Collide):
    """Collide by angle: minimise 1 − cos(f(x₀+δ), f(x_tg)) (scale-free; what cosine-read classifiers see)."""

    name = "collide-cosine"

    def loss(self, z, reference):
        return 1 - _cosine(z, reference)


@register_objective("push-cosine", help="push by angle: cos to the original representation")
class PushCosine(Push):
    """Push by angle: minimise cos(f(x₀+δ), f(x₀)) (zero gradient at δ = 0: random start by default)."""

    name = "push-cosine"

    def loss(self, z, reference):
        return _cosine(z, reference)


class LogitObjective(Objective):
    """A classic loss on the model's own logits; the reference is the true label."""

    needs_head = True

    def features(self, encoder, representation, pixels):
        return encoder.logits(pixels)

    def reference(self, clean, target, labels=None):
        if labels is None:
            raise MedrepError(f"the {self.name} objective needs the items' labels", where=Param("objective"))
        return labels


@register_objective("ce", help="cross-entropy on the model's own logits (models with a head)")
class CrossEntropy(LogitObjective):
    """Untargeted cross-entropy on the logits, maximised (minimise −CE)."""

    name = "ce"

    def loss(self, z, reference):
        return -torch.nn.functional.cross_entropy(z.float(), reference.long(), reduction="none")


@register_objective("dlr", help="Croce & Hein's difference of logits ratio (models with a head, 3+ classes)")
class DLR(LogitObjective):
    """Croce & Hein's difference of logits ratio, untargeted: minimise (z_y − max_{i≠y} z_i) / (z_π1 − z_π3)."""

    name = "dlr"

    def loss(self, z, reference):
        z = z.float()
        if z.shape[1] < 3:
            raise MedrepError(f"the DLR loss needs at least 3 classes (the head has {z.shape[1]}); use ce",
                              where=Param("objective"))
        y = reference.long()
        top = z.sort(dim=1, descending=True).values
        true = z.gather(1, y.view(-1, 1)).squeeze(1)
        other = z.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
        return (true - other) / (top[:, 0] - top[:, 2] + 1e-12)


def _cosine(z: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(z.float(), reference.float(), dim=1)  # float16 norms overflow


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


class ObjectiveLoss:
    """x′ → per-item loss for one batch; ``subset(index)`` restricts it to some items (early exit)."""

    def __init__(self, encoder: Encoder, representation: Representation, objective: Objective, reference: torch.Tensor,
                 autocast: torch.dtype | None = None):
        self.encoder, self.representation, self.objective = encoder, representation, objective
        self.reference, self.autocast = reference, autocast

    def __call__(self, x_adv: torch.Tensor) -> torch.Tensor:
        if self.autocast is None:
            return self.objective.loss(self.objective.features(self.encoder, self.representation, x_adv), self.reference)
        with torch.autocast(device_type=x_adv.device.type, dtype=self.autocast):
            z = self.objective.features(self.encoder, self.representation, x_adv)
        return self.objective.loss(z, self.reference)  # the distance itself in float32

    def subset(self, index: torch.Tensor) -> "ObjectiveLoss":
        return ObjectiveLoss(self.encoder, self.representation, self.objective, self.reference[index], self.autocast)


def representation_loss(encoder: Encoder, representation: Representation, objective: Objective,
                        reference: torch.Tensor, autocast: torch.dtype | None = None) -> ObjectiveLoss:
    """Close over everything fixed for one batch: x′ → per-item loss."""
    return ObjectiveLoss(encoder, representation, objective, reference, autocast)
