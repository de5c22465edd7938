"""Pure functions behind every aligner: scaling, padding, the estimators of T, relative projection.

Each takes and returns ``torch.Tensor`` (rows = items) on whatever device the input lives on, so the
estimator objects in :mod:`medrep.align.estimators` are thin state holders around them, and Procrustes
is composed from ``standard_scaling_state`` + ``zero_pad`` + ``procrustes`` rather than re-implemented.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medrep.errors import MedrepError, Param


# -- scaling -----------------------------------------------------------------------------------
def standard_scaling_state(x: torch.Tensor, eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """Per-dimension mean and standard deviation of the anchors; constant dimensions get scale 1."""
    if x.shape[0] < 2:
        raise MedrepError(f"standard scaling needs at least 2 anchors, got {x.shape[0]}", where="anchors")
    shift = x.mean(dim=0)
    scale = x.std(dim=0)
    scale = torch.where(scale > eps, scale, torch.ones_like(scale))  # zero-padded / dead units stay as they are
    return {"shift": shift, "scale": scale}


def standard_scale(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (x - shift) / scale


def standard_unscale(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * scale + shift


# -- padding -----------------------------------------------------------------------------------
def zero_pad(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Append zero columns up to ``dim`` (no-op when already that wide)."""
    if x.shape[1] > dim:
        raise MedrepError(f"cannot pad width {x.shape[1]} down to {dim}", where="padding")
    return F.pad(x, (0, dim - x.shape[1])) if x.shape[1] < dim else x


def pad_or_truncate(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The naive 'no T' map between spaces of different width: zero-pad or drop trailing columns."""
    return zero_pad(x, dim) if x.shape[1] <= dim else x[:, :dim]


# -- estimators of T (x @ T ≈ y) ---------------------------------------------------------------
def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise MedrepError(f"anchors must be 2-D (items × dims), got {tuple(x.shape)} and {tuple(y.shape)}", where="anchors")
    if x.shape[0] != y.shape[0]:
        raise MedrepError(f"mismatched anchor counts: {x.shape[0]} source anchors but {y.shape[0]} target anchors",
                          where="anchors")


def procrustes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Orthogonal R minimising ‖xR − y‖_F: the thin SVD of xᵀy = UΣVᵀ, R = UVᵀ.

    For equal widths this is orthogonal Procrustes.  For unequal widths (d_x × d_y, semi-orthogonal) it is the
    padded solution without the padding: zero-padding both sides to the larger width and solving the square
    problem gives a matrix whose only block that ever meets non-zero inputs is this one, whenever xᵀy has rank
    min(d_x, d_y) (enough anchors) — the square SVD's extra singular vectors then lie in the padded coordinates.
    With fewer anchors both forms complete the directions the anchors do not see arbitrarily (and differently).
    Solving unpadded costs an SVD of d_x × d_y instead of max(d_x, d_y)²: 1280 × 384 instead of 1280 × 1280."""
    _check_pair(x, y)
    return orthogonalize(x.T @ y)


def orthogonalize(w: torch.Tensor) -> torch.Tensor:
    """Nearest (semi-)orthogonal matrix to ``w`` in Frobenius norm: UVᵀ of its SVD."""
    u, _, vh = torch.linalg.svd(w, full_matrices=False)
    return u @ vh


def least_squares(x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    """W minimising ‖xW − y‖² (+ ridge·‖W‖²).  Minimum-norm when x has zero (padded) columns."""
    _check_pair(x, y)
    if ridge < 0:
        raise MedrepError(f"ridge must be ≥ 0, got {ridge}", where=Param("ridge"))
    if ridge > 0:
        gram = x.T @ x
        gram = gram + ridge * torch.eye(gram.shape[0], dtype=x.dtype, device=x.device)
        return torch.linalg.solve(gram, x.T @ y)
    # pinv works on every device and handles the rank deficiency zero-padding introduces
    return torch.linalg.pinv(x) @ y


def lstsq_ortho(x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    """Least squares, then replaced by its nearest orthogonal matrix."""
    return orthogonalize(least_squares(x, y, ridge))


def affine_closed_form(x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) minimising ‖xW + b − y‖² in closed form; the bias is never penalised by the ridge."""
    _check_pair(x, y)
    mx, my = x.mean(0), y.mean(0)
    # centring separates the bias exactly: W from the centred problem, b = ȳ − x̄W
    w = least_squares(x - mx, y - my, ridge)
    return w, my - mx @ w


def affine_gradient_descent(x: torch.Tensor, y: torch.Tensor, steps: int = 300, lr: float = 1e-2, seed: int = 0,
                            ridge: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) fitted by Adam on the mean squared error (the latentis / paper 'SGD affine' variant)."""
    _check_pair(x, y)
    if steps < 1:
        raise MedrepError(f"needs at least one step, got {steps}", where=Param("affine_steps"))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    bound = 1.0 / max(1, x.shape[1]) ** 0.5
    w = ((torch.rand(x.shape[1], y.shape[1], generator=gen, dtype=x.dtype) * 2 - 1) * bound).to(x.device)
    b = torch.zeros(y.shape[1], dtype=x.dtype, device=x.device)
    w.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = F.mse_loss(x @ w + b, y)
            if ridge:
                loss = loss + ridge * (w * w).sum() / x.shape[0]
            loss.backward()
            opt.step()
    return w.detach(), b.detach()


# -- relative representations ------------------------------------------------------------------
def relative_projection(x: torch.Tensor, anchors: torch.Tensor, center: torch.Tensor | None = None) -> torch.Tensor:
    """r(x) = [cos(x, a_j)]_j over the anchors (Moschella et al. 2023); optionally centred first."""
    if x.shape[1] != anchors.shape[1]:
        raise MedrepError(f"items have width {x.shape[1]} but anchors {anchors.shape[1]}", where="relative")
    if center is not None:
        x, anchors = x - center, anchors - center
    return F.normalize(x, dim=1) @ F.normalize(anchors, dim=1).T
