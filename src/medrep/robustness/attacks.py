"""Attacks as templates: a ball (the norm's geometry) × an update rule (PGD, APGD, Square), each replaceable.

``attack.run(loss_fn, x, eps)`` minimises a per-item loss over a perturbation δ of raw [0, 1] pixels.  A new
norm subclasses :class:`Ball` (``init`` / ``step`` / ``project``); a new objective is just a different
``loss_fn`` (see :mod:`medrep.robustness.objectives`); what counts as success lives apart, in
:mod:`medrep.robustness.criteria` (as in Foolbox).  Parameters never get gradients: the gradient is taken
w.r.t. δ only, with ``torch.autograd.grad``.

Early exit: with ``early_stop`` (a criterion), an item that meets it leaves the batch with the point that met
it, so later steps compute only the items still unbroken.  A loss or criterion that can be restricted to some
items (a ``subset(index)`` method, as medrep's own have) is then evaluated on those items only; a plain callable
is evaluated on the whole batch and read at the items still running.  Every attack counts the passes it made
(``AttackOutput.passes``: items through a forward + backward pass, and through a forward pass alone).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from medrep.errors import MedrepError, Param
# the norms' registry lives in medrep.robustness.registry; imported here for the attacks below and for callers
# that know it by this module
from medrep.robustness.registry import NORMS, register_norm

LossFn = Callable[[torch.Tensor], torch.Tensor]  # x_adv (B×C×H×W) → per-item loss to minimise (B,)
StopFn = Callable[[torch.Tensor], torch.Tensor]  # x_adv → bool (B,): item counts as done

#: Madry et al.'s rule of thumb: steps of 2.5·ε/steps let the iterate cross the ball and come back.
DEFAULT_RELATIVE_STEP = 2.5


@dataclass
class Passes:
    """Items sent through the network: with a backward pass (gradient), forward only (loss or criterion)."""

    gradient: int = 0
    forward: int = 0
    gradient_calls: int = 0  # torch.autograd.grad calls

    def to_dict(self) -> dict[str, int]:
        return {"gradient": self.gradient, "forward": self.forward, "gradient_calls": self.gradient_calls}


@dataclass
class AttackOutput:
    x_adv: torch.Tensor  # B×C×H×W, in [0, 1], within the ε-ball of x
    loss_history: torch.Tensor  # (rows, B): loss at each step's iterate (Square: every few queries)
    steps_taken: torch.Tensor  # (B,) long: steps (Square: queries) before the item left, or the whole budget
    passes: Passes = field(default_factory=Passes)
    succeeded: torch.Tensor | None = None  # (B,) bool: met the early-stop criterion (None without one)
    step_size_history: torch.Tensor | None = None  # APGD: (steps, B) step size used at each step
    restarts: torch.Tensor | None = None  # APGD: (steps, B) bool, the iterate restarted from the best point


# -- geometry ---------------------------------------------------------------------------------------------
class Ball:
    """The ε-ball of one norm: a random start inside it, a steepest-descent step, the projection back."""

    name = ""

    def init(self, x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def step(self, delta: torch.Tensor, grad: torch.Tensor, step_size) -> torch.Tensor:
        """δ − step_size · (the norm's steepest-descent direction of the gradient); step_size a float or (B,)."""
        raise NotImplementedError

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        raise NotImplementedError


class LinfBall(Ball):
    """L∞ box: sign steps, coordinate-wise clamp (Madry et al. PGD)."""

    name = "linf"

    def init(self, x, eps, generator):
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        return (2 * u - 1) * eps

    def step(self, delta, grad, step_size):
        return delta - _per_item(step_size, delta) * grad.sign()

    def project(self, delta, eps):
        return delta.clamp(-eps, eps)


class L2Ball(Ball):
    """L2 ball: steps along the per-item normalised gradient, radial projection."""

    name = "l2"

    def init(self, x, eps, generator):
        # Uniform in the ball: Gaussian direction, radius ε·u^(1/d).  Both drawn on the CPU (the runner's seeded
        # generators are CPU ones; explicit, so a torch.set_default_device elsewhere cannot move them), then moved.
        g = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu")
        d = g[0].numel()
        r = torch.rand((x.shape[0],), generator=generator, dtype=x.dtype, device="cpu") ** (1.0 / d)
        g = g / _flat_norm(g).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
        return (g * (eps * r).view(-1, *[1] * (x.ndim - 1))).to(x.device, x.dtype)

    def step(self, delta, grad, step_size):
        n = _flat_norm(grad).clamp_min(1e-12).view(-1, *[1] * (grad.ndim - 1))
        scale = _per_item(step_size, grad)
        scale = scale.float() if isinstance(scale, torch.Tensor) else scale
        return delta - (scale * grad.float() / n).to(delta.dtype)

    def project(self, delta, eps):
        n = _flat_norm(delta).view(-1, *[1] * (delta.ndim - 1))
        return delta * torch.clamp(eps / n.clamp_min(1e-12), max=1.0).to(delta.dtype)


BALLS: dict[str, type[Ball]] = {"linf": LinfBall, "l2": L2Ball}


def make_ball(norm: str) -> Ball:
    key = str(norm).lower()
    if key not in BALLS:
        NORMS.check(key)  # the registry's one-line error, naming the parameter
        raise MedrepError(f"norm {norm!r} has no ball for APGD / Square (they know {', '.join(BALLS)})",
                          where=NORMS.param)
    return BALLS[key]()


# -- batches whose items can leave -------------------------------------------------------------------------
class _Items:
    """The items of a batch still running, and the loss / criterion restricted to them."""

    def __init__(self, loss_fn: LossFn, stop: StopFn | None, x: torch.Tensor, passes: Passes):
        self.loss_fn, self.stop, self.x, self.passes = loss_fn, stop, x, passes
        self.index = torch.arange(x.shape[0], device=x.device)

    def _restricted(self, fn, x_sub: torch.Tensor):
        if len(self.index) == self.x.shape[0]:
            return fn(x_sub)
        if hasattr(fn, "subset"):
            return fn.subset(self.index)(x_sub)
        # a plain callable sees the whole batch (the others at their clean pixels); only the running rows are read
        full = self.x.detach().clone().index_put((self.index,), x_sub.to(self.x.dtype))
        return fn(full)[self.index]

    def loss_and_grad(self, x_sub: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_sub = x_sub.detach().requires_grad_(True)
        loss = self._restricted(self.loss_fn, x_sub)
        (grad,) = torch.autograd.grad(loss.sum(), x_sub)
        self.passes.gradient += len(self.index)
        self.passes.gradient_calls += 1
        return _at_least_float32(loss.detach()), grad.detach()

    def loss(self, x_sub: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = _at_least_float32(self._restricted(self.loss_fn, x_sub))
        self.passes.forward += len(self.index)
        return out

    def done(self, x_sub: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The criterion on (some of) the running items; ``rows`` indexes into the running items."""
        if self.stop is None:
            return torch.zeros(x_sub.shape[0], dtype=torch.bool, device=x_sub.device)
        keep = self.index
        if rows is not None:
            self.index = self.index[rows]
        try:
            with torch.no_grad():
                out = self._restricted(self.stop, x_sub)
        finally:
            self.index = keep
        self.passes.forward += x_sub.shape[0]
        return torch.as_tensor(out, dtype=torch.bool, device=x_sub.device)

    def leave(self, rows: torch.Tensor) -> None:
        """Drop the running items at ``rows`` (bool over the running items)."""
        self.index = self.index[~rows]


# -- the templates ----------------------------------------------------------------------------------------
class Attack:
    """An attack: ``run(loss_fn, x, eps, generator)`` → :class:`AttackOutput`."""

    name = ""
    uses_gradients = True

    def __init__(self, ball: Ball | str = "linf", early_stop: StopFn | None = None, random_start: bool = False):
        self.ball = make_ball(ball) if isinstance(ball, str) else ball
        self.early_stop = early_stop
        self.random_start = random_start

    @property
    def norm(self) -> str:
        return self.ball.name

    # the ball's pieces, under the names the PGD template has always had
    def init_delta(self, x, eps, generator):
        return self.ball.init(x, eps, generator)

    def step(self, delta, grad, step_size):
        return self.ball.step(delta, grad, step_size)

    def project(self, delta, eps):
        return self.ball.project(delta, eps)

    def start(self, x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        delta = self.project(self.init_delta(x, eps, generator), eps) if self.random_start else torch.zeros_like(x)
        return (x + delta).clamp_(0, 1) - x  # stay in the valid pixel range

    def to_ball(self, x: torch.Tensor, x_new: torch.Tensor, eps: float) -> torch.Tensor:
        """P: into the ε-ball around ``x``, then into the pixel range."""
        return (x + self.project(x_new - x, eps)).clamp_(0, 1)

    def run(self, loss_fn: LossFn, x: torch.Tensor, eps: float, generator: torch.Generator | None = None,
            final_loss: bool = True) -> AttackOutput:
        raise NotImplementedError


class GradientAttack(Attack):
    """Projected gradient descent on a per-item loss (Madry et al.); the ball fixes the geometry."""

    name = "pgd"

    def __init__(self, steps: int, step_size: float | None = None, relative_step: float = DEFAULT_RELATIVE_STEP,
                 random_start: bool = False, early_stop: StopFn | None = None, ball: Ball | str | None = None):
        super().__init__(ball if ball is not None else self.default_ball(), early_stop, random_start)
        self.steps = check_steps(steps)
        if step_size is not None and not step_size > 0:
            raise MedrepError(f"must be positive (got {step_size})", where=Param("step_size"))
        self.step_size = step_size
        self.relative_step = relative_step

    def default_ball(self) -> Ball | str:
        return "linf"

    def resolve_step_size(self, eps: float) -> float:
        return float(self.step_size) if self.step_size is not None else self.relative_step * eps / self.steps

    def run(self, loss_fn: LossFn, x: torch.Tensor, eps: float, generator: torch.Generator | None = None,
            final_loss: bool = True) -> AttackOutput:
        """Attack ``x``; returns the last iterate (an item that met the early-stop criterion: the point that met
        it).  ``final_loss=False`` skips the extra forward pass for the last row of the loss history (left NaN
        for the items still running) when the caller evaluates the final iterate anyway."""
        check_eps(eps)
        x = x.detach()
        alpha = self.resolve_step_size(eps)
        passes = Passes()
        items = _Items(loss_fn, self.early_stop, x, passes)
        delta = self.start(x, eps, generator)
        b = x.shape[0]
        history = torch.full((self.steps + 1, b), float("nan"), dtype=torch.float32, device=x.device)
        taken = torch.full((b,), self.steps, dtype=torch.long, device=x.device)
        succeeded = torch.zeros(b, dtype=torch.bool, device=x.device)
        for t in range(self.steps):
            idx = items.index
            loss, grad = items.loss_and_grad(x[idx] + delta[idx])
            history[t, idx] = loss.float()
            done = items.done(x[idx] + delta[idx])
            if bool(done.any()):
                taken[idx[done]], succeeded[idx[done]] = t, True
                items.leave(done)
                idx, grad = idx[~done], grad[~done]
                if len(idx) == 0:
                    break
            with torch.no_grad():
                new = self.project(self.step(delta[idx], grad, alpha), eps)
                delta[idx] = (x[idx] + new).clamp_(0, 1) - x[idx]  # stay in the valid pixel range
        idx = items.index
        if len(idx) and (final_loss or self.early_stop is not None):
            history[self.steps, idx] = items.loss(x[idx] + delta[idx]).float()
            succeeded[idx[items.done(x[idx] + delta[idx])]] = True
        _fill_frozen_rows(history, taken)
        x_adv = x + delta
        return AttackOutput(x_adv.detach(), history, taken, passes, succeeded if self.early_stop is not None else None)


@register_norm("linf")
class LinfPGD(GradientAttack):
    """L∞ PGD: sign steps, coordinate-wise clamp."""


@register_norm("l2")
class L2PGD(GradientAttack):
    """L2 PGD: normalised gradient steps, radial projection."""

    def default_ball(self):
        return "l2"


def apgd_checkpoints(steps: int) -> list[int]:
    """Croce & Hein's checkpoints wⱼ = ⌈pⱼ·N⌉: p₀ = 0, p₁ = 0.22, pⱼ₊₁ = pⱼ + max(pⱼ − pⱼ₋₁ − 0.03, 0.06), below N."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    out = []
    for v in p:
        w = math.ceil(round(v * steps, 9))  # round: 0.22 + 0.19 is 0.41000000000000003, and ⌈41.000…04⌉ would be 42
        if w < steps and (not out or w > out[-1]):
            out.append(w)
    return out


class APGD(Attack):
    """Auto-PGD (Croce & Hein, ICML 2020, Algorithm 1) on a loss to minimise (their f is −loss).

    η⁽⁰⁾ = 2ε; x⁽¹⁾ = P(x⁽⁰⁾ − η·step(∇)); then x⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ + α(z⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾) + (1 − α)(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾)) with
    z⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ − η·step(∇)), α = 0.75.  At each checkpoint wⱼ (:func:`apgd_checkpoints`) the step size halves
    and the iterate restarts from the best point so far when (1) the loss fell in fewer than ρ = 0.75 of the
    steps since the last checkpoint, or (2) the step size was not reduced at the last checkpoint and the best
    loss has not improved since.  Returns the best point (lowest loss) of each item.  Per item, one forward +
    backward pass per step and one forward pass for the last iterate.
    """

    name = "apgd"

    def __init__(self, steps: int, ball: Ball | str = "linf", early_stop: StopFn | None = None,
                 random_start: bool = False, momentum: float = 0.75, rho: float = 0.75, initial_step: float = 2.0):
        super().__init__(ball, early_stop, random_start)
        self.steps = check_steps(steps)
        self.momentum, self.rho, self.initial_step = momentum, rho, initial_step

    def run(self, loss_fn, x, eps, generator=None, final_loss=True):
        check_eps(eps)
        state = _APGDState(self, loss_fn, x.detach(), eps, generator)
        for k in range(self.steps + 1):
            if not state.evaluate(k):
                break
            if k < self.steps:
                state.advance(k)
        return state.output()


class _APGDState:
    """Per-item state of one APGD run (kept for every item; the running ones are ``items.index``)."""

    def __init__(self, attack: APGD, loss_fn, x, eps, generator):
        self.a, self.x, self.eps = attack, x, eps
        n, b = attack.steps, x.shape[0]
        dev, real = x.device, torch.promote_types(x.dtype, torch.float32)
        self.passes = Passes()
        self.items = _Items(loss_fn, attack.early_stop, x, self.passes)
        self.cur = x + attack.start(x, eps, generator)
        self.prev = self.cur.clone()
        self.grad = torch.zeros_like(x)
        self.loss = torch.full((b,), float("inf"), device=dev, dtype=real)
        self.prev_loss = self.loss.clone()
        self.best_x, self.best_grad = self.cur.clone(), torch.zeros_like(x)
        self.best = torch.full((b,), float("inf"), device=dev, dtype=real)
        self.eta = torch.full((b,), attack.initial_step * eps, device=dev, dtype=real)
        self.history = torch.full((n + 1, b), float("nan"), device=dev)
        self.fell = torch.zeros((n + 1, b), dtype=torch.bool, device=dev)  # loss(x⁽ᵏ⁾) < loss(x⁽ᵏ⁻¹⁾)
        self.eta_history = torch.full((n, b), float("nan"), device=dev, dtype=real)
        self.restarts = torch.zeros((n, b), dtype=torch.bool, device=dev)
        self.checkpoints = apgd_checkpoints(n)
        self.last_checkpoint = 0
        self.eta_at_checkpoint = self.eta.clone()
        self.best_at_checkpoint = self.best.clone()
        self.taken = torch.full((b,), n, dtype=torch.long, device=dev)
        self.succeeded = torch.zeros(b, dtype=torch.bool, device=dev)
        self.out = torch.empty_like(x)

    def evaluate(self, k: int) -> bool:
        """Loss (and, before the last step, gradient) at x⁽ᵏ⁾; best point, exits, checkpoint.  False: none left."""
        idx = self.items.index
        if k < self.a.steps:
            loss, grad = self.items.loss_and_grad(self.cur[idx])
            self.grad[idx] = grad
        else:
            loss = self.items.loss(self.cur[idx])
        self.history[k, idx] = loss.float()
        if k > 0:
            self.fell[k, idx] = loss < self.loss[idx]
        self.prev_loss[idx] = self.loss[idx]
        self.loss[idx] = loss
        better = loss < self.best[idx]
        rows = idx[better]
        self.best[rows], self.best_x[rows], self.best_grad[rows] = loss[better], self.cur[rows], self.grad[rows]
        if k == 1:  # Algorithm 1's f_max before the loop: the better of x⁽⁰⁾ and x⁽¹⁾
            self.best_at_checkpoint[idx] = self.best[idx]
        done = self.items.done(self.cur[idx])
        if bool(done.any()):
            rows = idx[done]
            self.out[rows], self.taken[rows], self.succeeded[rows] = self.cur[rows], k, True
            self.items.leave(done)
        if k - 1 in self.checkpoints and k - 1 > 0:
            self.checkpoint(k - 1)
        return len(self.items.index) > 0

    def checkpoint(self, w: int) -> None:
        """Algorithm 1 at k = w ∈ W (x⁽ʷ⁺¹⁾ already evaluated): halve η and restart from the best point when
        condition 1 or 2 holds."""
        idx = self.items.index
        since = self.fell[self.last_checkpoint + 1: w + 1, idx].sum(0)
        cond1 = since < self.a.rho * (w - self.last_checkpoint)
        cond2 = (self.eta_at_checkpoint[idx] == self.eta[idx]) & (self.best_at_checkpoint[idx] == self.best[idx])
        self.eta_at_checkpoint[idx], self.best_at_checkpoint[idx] = self.eta[idx], self.best[idx]
        rows = idx[cond1 | cond2]
        self.eta[rows] = self.eta[rows] / 2
        # x⁽ʷ⁺¹⁾ is now the best point: the next count of rising steps compares against it
        self.fell[w + 1, rows] = self.best[rows] < self.prev_loss[rows]
        self.cur[rows], self.grad[rows], self.loss[rows] = self.best_x[rows], self.best_grad[rows], self.best[rows]
        self.restarts[w, rows] = True
        self.last_checkpoint = w

    def advance(self, k: int) -> None:
        """x⁽ᵏ⁺¹⁾ from x⁽ᵏ⁾ (momentum from k = 1 on)."""
        idx = self.items.index
        a, x, cur = self.a, self.x[idx], self.cur[idx]
        eta = self.eta[idx]
        self.eta_history[k, idx] = eta
        with torch.no_grad():
            z = a.to_ball(x, x + a.step(cur - x, self.grad[idx], eta), self.eps)
            if k > 0:
                z = a.to_ball(x, cur + a.momentum * (z - cur) + (1 - a.momentum) * (cur - self.prev[idx]), self.eps)
        self.prev[idx] = cur
        self.cur[idx] = z

    def output(self) -> AttackOutput:
        running = self.items.index
        self.out[running] = self.best_x[running]
        _fill_frozen_rows(self.history, self.taken)
        return AttackOutput(self.out.detach(), self.history, self.taken, self.passes,
                            self.succeeded if self.a.early_stop is not None else None, self.eta_history, self.restarts)


def square_p(p_init: float, query: int, queries: int) -> float:
    """Square's share of pixels changed per query: p_init halved at queries 10, 50, 200, 500, 1000, 2000, 4000,
    6000 and 8000 of 10,000, the schedule scaled to the budget (Andriushchenko et al.'s p_selection)."""
    it = int(query / queries * 10000)
    for k, bound in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if it <= bound:
            return p_init / 2 ** k
    return p_init / 2 ** 9


class SquareAttack(Attack):
    """Square attack (Andriushchenko et al., ECCV 2020): score-based, no gradients; L∞ here, L2 in
    :meth:`_run_l2`.

    L∞: starts from vertical stripes of ±ε (one sign per column and channel); each query gives one random square
    window (side √(p·H·W), p from :func:`square_p`) a new ±ε per channel and keeps it only when the loss falls.
    One forward pass per item and query; the criterion is checked only on items whose point changed.
    """

    name = "square"
    uses_gradients = False

    def __init__(self, queries: int, ball: Ball | str = "linf", early_stop: StopFn | None = None,
                 p_init: float = 0.05, history_rows: int = 100):
        super().__init__(ball, early_stop, False)
        if int(queries) < 1:
            raise MedrepError(f"must be at least 1 (got {queries})", where=Param("queries"))
        self.queries, self.p_init, self.history_rows = int(queries), p_init, history_rows

    def run(self, loss_fn, x, eps, generator=None, final_loss=True):
        check_eps(eps)
        x = x.detach()
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        start, propose = (self._l2_proposals if self.ball.name == "l2" else self._linf_proposals)(x, eps, gen)
        return self._search(loss_fn, x, start, propose)

    def _linf_proposals(self, x: torch.Tensor, eps: float, gen: torch.Generator):
        """Square attack, L∞: starts from vertical stripes of ±ε; each query sets one random square window to
        a random corner of the ε-box, per channel."""
        b, c, h, w = x.shape
        stripes = torch.randint(0, 2, (b, c, 1, w), generator=gen).to(x.device, x.dtype) * 2 - 1
        rows_y = torch.arange(h, device=x.device).view(1, 1, h, 1)
        rows_x = torch.arange(w, device=x.device).view(1, 1, 1, w)

        def propose(q: int, idx: torch.Tensor, best_x: torch.Tensor) -> torch.Tensor:
            side = int(round(math.sqrt(square_p(self.p_init, q, self.queries) * h * w)))
            side = min(max(side, 1), h - 1)
            # drawn for every item of the batch, used for the running ones: an item's draws do not depend on
            # which others have left, so early exit changes no item's path
            top = torch.randint(0, h - side, (b,), generator=gen).to(x.device)[idx].view(-1, 1, 1, 1)
            left = torch.randint(0, w - side, (b,), generator=gen).to(x.device)[idx].view(-1, 1, 1, 1)
            window = (rows_y >= top) & (rows_y < top + side) & (rows_x >= left) & (rows_x < left + side)
            old = best_x[idx]
            cand, pending = old.clone(), torch.ones(len(idx), dtype=torch.bool, device=x.device)
            for _ in range(8):  # a window whose new pixels equal the old ones would waste the query: redraw it
                draw = torch.randint(0, 2, (b, c, 1, 1), generator=gen).to(x.device, x.dtype)[idx]
                signs = (draw * 2 - 1) * eps
                trial = (x[idx] + torch.where(window, signs, old - x[idx])).clamp(0, 1)
                use = pending & ((trial - old).abs() >= 1e-7).flatten(1).any(1)
                cand[use] = trial[use]
                pending &= ~use  # always 8 draws (no early break), so the stream never depends on the other items
            return cand

        return (x + eps * stripes).clamp(0, 1), propose

    def _l2_proposals(self, x: torch.Tensor, eps: float, gen: torch.Generator):
        """Square attack, L2 (the paper's Algorithm 3): starts from a grid of pseudo-Gaussian bumps of random
        sign scaled to ‖δ‖ = ε; each query moves the perturbation's mass of a second window into a first one
        (:func:`square_l2_candidate`)."""
        h, w = x.shape[-2:]
        if min(h, w) < 5:
            raise MedrepError(f"the L2 Square attack needs images of at least 5 × 5 pixels (got {h} × {w})",
                              where=Param("attack"))

        def propose(q: int, idx: torch.Tensor, best_x: torch.Tensor) -> torch.Tensor:
            side = max(int(round(math.sqrt(square_p(self.p_init, q, self.queries) * h * w))), 3)
            side = min(side + (1 - side % 2), min(h, w) - 1)  # odd, as the paper's code; inside the image
            return square_l2_candidate(x, best_x, eps, side, gen, idx)

        return (x + square_l2_init(x.shape, eps, gen).to(x.device, x.dtype)).clamp(0, 1), propose

    def _search(self, loss_fn, x: torch.Tensor, start: torch.Tensor, propose) -> AttackOutput:
        """The random search both norms share: a query keeps its candidate only where the loss falls; an item
        that meets the success criterion leaves the batch."""
        b = x.shape[0]
        passes = Passes()
        items = _Items(loss_fn, self.early_stop, x, passes)
        every = max(1, -(-self.queries // self.history_rows))
        history = torch.full((self.queries // every + 1, b), float("nan"), device=x.device)
        taken = torch.full((b,), self.queries, dtype=torch.long, device=x.device)
        succeeded = torch.zeros(b, dtype=torch.bool, device=x.device)
        best_x = start
        best = items.loss(best_x)
        history[0] = best.float()
        self._exit(items, best_x, torch.ones(b, dtype=torch.bool, device=x.device), taken, succeeded, 1)
        for q in range(1, self.queries):
            idx = items.index
            if len(idx) == 0:
                break
            cand = propose(q, idx, best_x)
            loss = items.loss(cand)
            better = loss < best[idx]
            rows = idx[better]
            best[rows], best_x[rows] = loss[better], cand[better]
            if q % every == 0:
                history[q // every, idx] = best[idx].float()
            if bool(better.any()):
                self._exit(items, best_x, better, taken, succeeded, q + 1)
        history[-1, items.index] = best[items.index].float()
        _fill_frozen_rows(history, (taken // every).clamp(max=history.shape[0] - 1))
        return AttackOutput(best_x.detach(), history, taken, passes,
                            succeeded if self.early_stop is not None else None)

    @staticmethod
    def _exit(items: _Items, best_x, changed, taken, succeeded, queries_used: int) -> None:
        """Check the criterion on the running items whose point changed; those that meet it leave."""
        if items.stop is None:
            return
        idx = items.index
        rows = changed.nonzero().flatten()
        done_some = items.done(best_x[idx[rows]], rows)
        if bool(done_some.any()):
            mask = torch.zeros(len(idx), dtype=torch.bool, device=idx.device)
            mask[rows[done_some]] = True
            taken[idx[mask]], succeeded[idx[mask]] = queries_used, True
            items.leave(mask)


def pseudo_gaussian_rectangle(rows: int, cols: int) -> torch.Tensor:
    """(rows, cols) nested rectangles around the centre, the k-th ring weighted 1/(k+1)², unit L2 norm (the
    Square attack's ``pseudo_gaussian_pert_rectangles``)."""
    delta = torch.zeros(rows, cols, dtype=torch.float64)
    cy, cx = rows // 2 + 1, cols // 2 + 1
    top, left = cy - 1, cx - 1
    for k in range(max(cy, cx)):
        delta[max(top, 0):min(top + 2 * k + 1, rows), max(left, 0):min(left + 2 * k + 1, cols)] += 1.0 / (k + 1) ** 2
        top, left = top - 1, left - 1
    return delta / delta.square().sum().sqrt()


def meta_pseudo_gaussian(side: int) -> torch.Tensor:
    """(side, side) a bump in the upper half and its negative in the lower half, unit L2 norm (the Square
    attack's ``meta_pseudo_gaussian_pert``; its random transpose is drawn by the caller)."""
    delta = torch.zeros(side, side, dtype=torch.float64)
    delta[:side // 2] = pseudo_gaussian_rectangle(side // 2, side)
    delta[side // 2:] = -pseudo_gaussian_rectangle(side - side // 2, side)
    return delta / delta.square().sum().sqrt()


def square_l2_init(shape: tuple[int, ...], eps: float, gen: torch.Generator) -> torch.Tensor:
    """The L2 Square attack's start: a grid of ⌊H/5⌋-sided pseudo-Gaussian bumps, a random sign per tile,
    item and channel (and a random transpose per tile), scaled to L2 norm ε per item (drawn on the CPU)."""
    b, c, h, w = shape
    side = max(h // 5, 1)
    start = (h - side * 5) // 2
    delta = torch.zeros(shape, dtype=torch.float64)
    base = meta_pseudo_gaussian(side)
    for top in range(start, start + side * (h // side), side):
        for left in range(start, start + side * (w // side), side):
            tile = base.T if bool(torch.rand((), generator=gen) > 0.5) else base
            sign = torch.randint(0, 2, (b, c, 1, 1), generator=gen, dtype=torch.float64) * 2 - 1
            bottom, right = min(top + side, h), min(left + side, w)
            delta[:, :, top:bottom, left:right] += sign * tile[:bottom - top, :right - left]
    return delta / _l2_norm(delta).clamp_min(1e-12).view(-1, 1, 1, 1) * eps


def _window(top: torch.Tensor, left: torch.Tensor, side: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per item: the (n, 1, H, W) mask of the side × side window at (top, left) and each pixel's row / column
    inside it (clamped outside)."""
    ys = torch.arange(h, device=top.device).view(1, 1, h, 1) - top.view(-1, 1, 1, 1)
    xs = torch.arange(w, device=top.device).view(1, 1, 1, w) - left.view(-1, 1, 1, 1)
    inside = (ys >= 0) & (ys < side) & (xs >= 0) & (xs < side)
    return inside, ys.clamp(0, side - 1), xs.clamp(0, side - 1)


def square_l2_candidate(x: torch.Tensor, best_x: torch.Tensor, eps: float, side: int, gen: torch.Generator,
                        idx: torch.Tensor) -> torch.Tensor:
    """One L2 Square query for the running items ``idx``: window 1 gets a new pseudo-Gaussian bump of random
    sign (per channel) on top of its current perturbation, window 2's perturbation is removed and its mass
    (with whatever of the budget ε² is unused, shared over the channels) goes to window 1; the whole
    perturbation is rescaled to norm ε and the point clipped to [0, 1].  Draws are made for every item of the
    batch and used for the running ones, so early exit changes no item's path."""
    b, c, h, w = x.shape
    draws = [torch.randint(0, h - side, (b,), generator=gen), torch.randint(0, w - side, (b,), generator=gen),
             torch.randint(0, h - side, (b,), generator=gen), torch.randint(0, w - side, (b,), generator=gen)]
    flip = (torch.rand(b, generator=gen) > 0.5)[idx.cpu()].to(x.device)
    signs = (torch.randint(0, 2, (b, c, 1, 1), generator=gen) * 2 - 1)[idx.cpu()].to(x.device, torch.float64)
    top1, left1, top2, left2 = (d[idx.cpu()].to(x.device) for d in draws)
    delta = (best_x[idx] - x[idx]).double()
    win1, ys, xs = _window(top1, left1, side, h, w)
    win2, _, _ = _window(top2, left2, side, h, w)
    base = meta_pseudo_gaussian(side).to(x.device)
    bump = torch.where(flip.view(-1, 1, 1, 1), base.T[ys, xs], base[ys, xs]) * win1  # (n, 1, H, W)
    def window_norm(t, mask):  # (n, c, 1, 1)
        return (t * mask).square().sum((2, 3), keepdim=True).sqrt()

    image_norm = _l2_norm(delta).view(-1, 1, 1, 1)
    union_norm = window_norm(delta, win1 | win2)
    new = signs * bump + delta * win1 / (1e-10 + window_norm(delta, win1))
    new = new / window_norm(new, win1).clamp_min(1e-12) * ((eps ** 2 - image_norm ** 2).clamp_min(0) / c + union_norm ** 2).sqrt()
    delta = torch.where(win1, new, torch.where(win2, torch.zeros_like(delta), delta))
    delta = delta / _l2_norm(delta).clamp_min(1e-12).view(-1, 1, 1, 1) * eps
    return (x[idx] + delta.to(x.dtype)).clamp(0, 1)


def _l2_norm(t: torch.Tensor) -> torch.Tensor:
    """(B,) L2 norm per item, in the tensor's own precision (the L2 Square attack works in float64)."""
    return t.flatten(1).norm(dim=1)


#: attack name → builder from (norm, steps, queries, early_stop, random_start, step_size, relative_step)
ATTACK_NAMES = ("pgd", "apgd", "square")
#: what ``--attack ensemble`` runs (AutoAttack's rule: the worst case per item over a gradient and a black-box attack)
ENSEMBLE = ("apgd", "square")


def build_attack(name: str, norm: str = "linf", steps: int = 50, queries: int = 5000, early_stop: StopFn | None = None,
                 random_start: bool = False, step_size: float | None = None,
                 relative_step: float = DEFAULT_RELATIVE_STEP) -> Attack:
    """One attack by name, on the norm's ball."""
    ball = make_ball(norm)
    if name == "pgd":
        return GradientAttack(steps, step_size, relative_step, random_start, early_stop, ball=ball)
    if name == "apgd":
        return APGD(steps, ball, early_stop, random_start)
    if name == "square":
        return SquareAttack(queries, ball, early_stop)
    raise MedrepError(f"unknown attack {name!r} (choose from {', '.join(ATTACK_NAMES)}, ensemble)", where=Param("attack"))


def parse_attacks(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """'ensemble' → (apgd, square); 'pgd,apgd' → (pgd, apgd); each name checked."""
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    out: list[str] = []
    for n in names:
        for m in (ENSEMBLE if n == "ensemble" else (n,)):
            if m not in ATTACK_NAMES:
                raise MedrepError(f"unknown attack {m!r} (choose from {', '.join(ATTACK_NAMES)}, ensemble)", where=Param("attack"))
            if m not in out:
                out.append(m)
    if not out:
        raise MedrepError("name at least one attack", where=Param("attack"))
    return tuple(out)


ATTACKS = NORMS  # the PGD attack of each norm, by its older name


def make_attack(norm: str, **kwargs) -> GradientAttack:
    key = str(norm)
    return NORMS.get(key if key in NORMS else key.lower())(**kwargs)


def check_steps(steps: int) -> int:
    if int(steps) < 1:
        raise MedrepError(f"must be at least 1 (got {steps})", where=Param("attack_steps"))
    return int(steps)


def check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or math.isnan(eps) or not eps > 0:
        raise MedrepError(f"ε must be positive (got {eps!r})", where=Param("eps"))
    return float(eps)


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _per_item(step_size, like: torch.Tensor):
    if isinstance(step_size, torch.Tensor) and step_size.ndim == 1:
        return step_size.to(like.device).view(-1, *[1] * (like.ndim - 1)).to(like.dtype)
    return step_size


def _fill_frozen_rows(history: torch.Tensor, taken: torch.Tensor) -> None:
    """Rows after an item left repeat its last loss, so per-step means stay comparable; NaN where nothing ran."""
    for row in range(1, history.shape[0]):
        gap = torch.isnan(history[row]) & ~torch.isnan(history[row - 1]) & (taken < row)
        history[row, gap] = history[row - 1, gap]


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    # in float32: a float16 gradient's norm overflows to inf from 65504, and the L2 step would vanish
    return t.flatten(1).float().norm(dim=1)
