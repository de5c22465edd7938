"""Gradient attacks as a template: objective × projection × step rule, each replaceable.

``GradientAttack.run(loss_fn, x, eps)`` minimises a per-item loss over a perturbation δ of raw [0, 1]
pixels.  A new norm overrides ``init_delta`` / ``step`` / ``project``; a new objective is just a
different ``loss_fn`` (see :mod:`medrep.robustness.objectives`).  Parameters never get gradients: the
gradient is taken w.r.t. δ only, with ``torch.autograd.grad``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from medrep.errors import MedrepError
from medrep.registry import Registry

LossFn = Callable[[torch.Tensor], torch.Tensor]  # x_adv (B×C×H×W) → per-item loss to minimise (B,)
StopFn = Callable[[torch.Tensor], torch.Tensor]  # x_adv → bool (B,): item counts as done

#: Madry et al.'s rule of thumb: steps of 2.5·ε/steps let the iterate cross the ball and come back.
DEFAULT_RELATIVE_STEP = 2.5


@dataclass
class AttackOutput:
    x_adv: torch.Tensor  # B×C×H×W, in [0, 1], within the ε-ball of x
    loss_history: torch.Tensor  # (steps + 1, B): loss before each step, then after the last one
    steps_taken: torch.Tensor  # (B,) long: < steps where early stopping froze the item


class GradientAttack:
    """Projected gradient descent on a per-item loss; subclasses fix the geometry (norm)."""

    norm: str = ""

    def __init__(self, steps: int, step_size: float | None = None, relative_step: float = DEFAULT_RELATIVE_STEP,
                 random_start: bool = False, early_stop: StopFn | None = None):
        if int(steps) < 1:
            raise MedrepError(f"must be at least 1 (got {steps})", where="--attack-steps")
        if step_size is not None and not step_size > 0:
            raise MedrepError(f"must be positive (got {step_size})", where="--step-size")
        self.steps = int(steps)
        self.step_size = step_size
        self.relative_step = relative_step
        self.random_start = random_start
        self.early_stop = early_stop

    # -- the three replaceable pieces -------------------------------------------------------------
    def init_delta(self, x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def step(self, delta: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """One descent step on δ given the loss gradient."""
        raise NotImplementedError

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        """Back into the ε-ball around 0."""
        raise NotImplementedError

    # -- the template ------------------------------------------------------------------------------
    def resolve_step_size(self, eps: float) -> float:
        return float(self.step_size) if self.step_size is not None else self.relative_step * eps / self.steps

    def run(self, loss_fn: LossFn, x: torch.Tensor, eps: float, generator: torch.Generator | None = None,
            final_loss: bool = True) -> AttackOutput:
        """Attack ``x``; ``final_loss=False`` skips the extra forward pass for the last row of the loss history
        (left NaN) when the caller evaluates the final iterate anyway."""
        check_eps(eps)
        x = x.detach()
        alpha = self.resolve_step_size(eps)
        if self.random_start:
            delta = self.project(self.init_delta(x, eps, generator), eps)
        else:
            delta = torch.zeros_like(x)
        delta = (x + delta).clamp_(0, 1) - x  # stay in the valid pixel range
        b = x.shape[0]
        history = torch.empty(self.steps + 1, b, dtype=torch.float32, device=x.device)
        active = torch.ones(b, dtype=torch.bool, device=x.device)
        taken = torch.full((b,), self.steps, dtype=torch.long, device=x.device)
        last = -1
        for t in range(self.steps):
            delta.requires_grad_(True)
            loss = loss_fn(x + delta)
            (grad,) = torch.autograd.grad(loss.sum(), delta)
            with torch.no_grad():
                history[t] = loss.detach().float()
                new = self.project(self.step(delta.detach(), grad, alpha), eps)
                new = (x + new).clamp_(0, 1) - x
                if self.early_stop is not None:
                    new = torch.where(active.view(-1, *[1] * (x.ndim - 1)), new, delta.detach())
                    done = self.early_stop(x + new) & active
                    taken[done] = t + 1
                    active &= ~done
                delta = new.detach()
            last = t
            if self.early_stop is not None and not bool(active.any()):
                break
        if final_loss:
            with torch.no_grad():
                final = loss_fn(x + delta).float()
        else:
            final = torch.full((b,), float("nan"), device=x.device)
        # Rows after an early stop repeat the frozen loss, so per-step means stay comparable.
        history[last + 1:] = final
        return AttackOutput((x + delta).detach(), history, taken)


class LinfPGD(GradientAttack):
    """L∞ box: sign steps, coordinate-wise clamp (Madry et al. PGD)."""

    norm = "linf"

    def init_delta(self, x, eps, generator):
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        return (2 * u - 1) * eps

    def step(self, delta, grad, step_size):
        return delta - step_size * grad.sign()

    def project(self, delta, eps):
        return delta.clamp(-eps, eps)


class L2PGD(GradientAttack):
    """L2 ball: steps along the per-item normalised gradient, radial projection."""

    norm = "l2"

    def init_delta(self, x, eps, generator):
        # Uniform in the ball: Gaussian direction, radius ε·u^(1/d).  Both drawn on the CPU (the runner's seeded
        # generators are CPU ones; explicit, so a torch.set_default_device elsewhere cannot move them), then moved.
        g = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu")
        d = g[0].numel()
        r = torch.rand((x.shape[0],), generator=generator, dtype=x.dtype, device="cpu") ** (1.0 / d)
        g = g / _flat_norm(g).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
        return (g * (eps * r).view(-1, *[1] * (x.ndim - 1))).to(x.device, x.dtype)

    def step(self, delta, grad, step_size):
        n = _flat_norm(grad).clamp_min(1e-12).view(-1, *[1] * (grad.ndim - 1))
        return delta - (step_size * grad.float() / n).to(delta.dtype)

    def project(self, delta, eps):
        n = _flat_norm(delta).view(-1, *[1] * (delta.ndim - 1))
        return delta * torch.clamp(eps / n.clamp_min(1e-12), max=1.0).to(delta.dtype)


#: norm → the gradient attack with that geometry (a new norm subclasses GradientAttack and registers here)
NORMS = Registry("norm", param="norm")
NORMS.register("linf", LinfPGD)
NORMS.register("l2", L2PGD)
ATTACKS = NORMS


def make_attack(norm: str, **kwargs) -> GradientAttack:
    key = str(norm)
    return NORMS.get(key if key in NORMS else key.lower())(**kwargs)


def check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or math.isnan(eps) or not eps > 0:
        raise MedrepError(f"ε must be positive (got {eps!r})", where="--eps")
    return float(eps)


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    # in float32: a float16 gradient's norm overflows to inf from 65504, and the L2 step would vanish
    return t.flatten(1).float().norm(dim=1)
