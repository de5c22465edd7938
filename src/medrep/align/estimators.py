"""Small fit/transform objects around :mod:`medrep.align.functional` (latentis-style).

``Translator(aligner)`` is the whole latent-space translation of Maiorca et al.: standard-scale each
space with its own anchor statistics → zero-pad both to the larger width → fit ``aligner`` → on the way
out unpad and undo the target's scaling.  The orthogonal aligner solves the padded problem on the unpadded
widths (the same map, see :func:`medrep.align.functional.procrustes`).  ``Procrustes`` is just ``Translator(Orthogonal())``.
Inputs may be numpy arrays or tensors; outputs come back as the same kind.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medrep.align import functional as AF
# the registry lives in medrep.align.registry; imported here for the estimators below and for callers that
# know it by this module
from medrep.align.registry import ESTIMATORS, register_estimator  # noqa: F401
from medrep.errors import MedrepError, Param
from medrep.registry import Option


def _t(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.float()
    return t.to(dtype) if dtype is not None else t


def _like(out: torch.Tensor, ref: Any):
    return out.detach().cpu().numpy() if isinstance(ref, np.ndarray) else out


class _Fitted:
    _fitted = False

    def _require_fit(self) -> None:
        if not self._fitted:
            raise MedrepError(f"{type(self).__name__} must be fitted before transform", where="align")


class StandardScaling(_Fitted):
    """Per-dimension standardisation with statistics from the anchors; invertible."""

    def fit(self, x) -> "StandardScaling":
        self.state = AF.standard_scaling_state(_t(x))
        self._fitted = True
        return self

    def transform(self, x):
        self._require_fit()
        t = _t(x, self.state["shift"].dtype)
        return _like(AF.standard_scale(t, **self.state), x)

    def inverse_transform(self, x):
        self._require_fit()
        t = _t(x, self.state["shift"].dtype)
        return _like(AF.standard_unscale(t, **self.state), x)


class ZeroPadding(_Fitted):
    """Pad source and target to the larger of the two widths; ``unpad_target`` undoes it for outputs."""

    def fit(self, x_dim: int, y_dim: int) -> "ZeroPadding":
        self.x_dim, self.y_dim, self.dim = int(x_dim), int(y_dim), max(int(x_dim), int(y_dim))
        self._fitted = True
        return self

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        self._require_fit()
        return AF.zero_pad(x, self.dim)

    def unpad_target(self, y: torch.Tensor) -> torch.Tensor:
        self._require_fit()
        return y[:, : self.y_dim]


class Aligner(_Fitted):
    """Fits T on (already scaled and padded) anchor pairs; ``min_anchors(d)`` says how many it needs."""

    name = "aligner"
    # whether the translator zero-pads source and target to one width before fitting (and the inputs after)
    pads_to_equal_width = True

    def __init__(self, ridge: float = 0.0):
        if ridge < 0:
            raise MedrepError(f"ridge must be ≥ 0, got {ridge}", where=Param("ridge"))
        self.ridge = float(ridge)

    def min_anchors(self, source_dim: int) -> int:
        return 2

    def solve(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # pragma: no cover
        """(matrix, bias or None) from scaled, padded anchor pairs: the one thing each aligner defines."""
        raise NotImplementedError

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> "Aligner":
        self.matrix, self.bias = self.solve(x, y)
        self._fitted = True
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        self._require_fit()
        return x @ self.matrix if self.bias is None else x @ self.matrix + self.bias


@register_estimator("ortho", help="Procrustes (orthogonal)")
class Orthogonal(Aligner):
    name = "ortho"

    def __init__(self, ridge: float = 0.0):
        if ridge:
            raise MedrepError("ridge does not apply to the orthogonal (Procrustes) estimator", where=Param("ridge"))
        super().__init__(0.0)

    # the padded square solution, computed on the unpadded widths (see AF.procrustes): the same map with enough
    # anchors, at a fraction of the SVD's cost when the widths differ
    pads_to_equal_width = False

    def solve(self, x, y):
        return AF.procrustes(x, y), None


@register_estimator("linear", help="least squares")
class LeastSquares(Aligner):
    name = "linear"

    def min_anchors(self, source_dim: int) -> int:
        # fewer anchors than source dimensions leaves T underdetermined (it interpolates the anchors)
        return 2 if self.ridge > 0 else source_dim

    def solve(self, x, y):
        return AF.least_squares(x, y, self.ridge), None


@register_estimator("lortho", help="least squares then orthogonalised")
class LeastSquaresOrtho(LeastSquares):
    name = "lortho"

    def solve(self, x, y):
        return AF.lstsq_ortho(x, y, self.ridge), None


@register_estimator("affine", help="least squares with a bias", options=[
    Option("solver", str, "closed", choices=("closed", "gd"), flag="affine-solver",
           help="affine fit in closed form or by gradient descent"),
    Option("seed", int, 0, flag="seed", help="seed of the gradient-descent fit")])
class Affine(Aligner):
    name = "affine"

    def __init__(self, ridge: float = 0.0, solver: str = "closed", steps: int = 300, lr: float = 1e-2, seed: int = 0):
        super().__init__(ridge)
        if solver not in ("closed", "gd"):
            raise MedrepError(f"unknown affine solver {solver!r} (choose closed or gd)", where=Param("affine_solver"))
        self.solver, self.steps, self.lr, self.seed = solver, steps, lr, seed

    def min_anchors(self, source_dim: int) -> int:
        return 2 if self.ridge > 0 or self.solver == "gd" else source_dim + 1

    def solve(self, x, y):
        if self.solver == "closed":
            return AF.affine_closed_form(x, y, self.ridge)
        return AF.affine_gradient_descent(x, y, self.steps, self.lr, self.seed, self.ridge)


def make_aligner(name: str, ridge: float = 0.0, **options: Any) -> Aligner:
    return ESTIMATORS.get(name)(ridge, **options)


def estimator_options(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options of ``given`` that estimator ``name`` declares, converted to their types."""
    declared = {o.name: o for o in ESTIMATORS.entry(name).options}
    return {k: declared[k].convert(v, where=Param((declared[k].flag or k).replace("-", "_"))) for k, v in given.items()
            if k in declared and v is not None}


class Translator(_Fitted):
    """x (source space) → T(x) (target space): scale → pad → aligner → unpad → inverse-scale."""

    # float64 costs nothing for the usual few hundred anchors and keeps results exact and reproducible;
    # beyond this many anchor entries the input's own precision is kept (10k × 1024 float32: ~3× faster)
    FLOAT64_MAX_ENTRIES = 4_000_000

    def __init__(self, aligner: Aligner | str = "ortho", scale: bool = True, ridge: float = 0.0,
                 dtype: torch.dtype | None = None, **options: Any):
        self.aligner = make_aligner(aligner, ridge, **options) if isinstance(aligner, str) else aligner
        self.scale = scale
        self.dtype = dtype  # None: float64 for small anchor sets, else the input's float type
        self.x_scaling, self.y_scaling, self.padding = StandardScaling(), StandardScaling(), ZeroPadding()

    @property
    def name(self) -> str:
        return self.aligner.name

    def check_anchor_count(self, n: int, source_dim: int, where: str = Param("anchors")) -> None:
        need = self.aligner.min_anchors(source_dim)
        if n < need:
            hint = " (or a ridge > 0, or the ortho estimator)" if self.aligner.name != "ortho" else ""
            raise MedrepError(f"the {self.aligner.name} estimator needs at least {need} anchors for a {source_dim}-d source "
                              f"space, got {n}{hint}", where=where)

    def fit(self, x, y) -> "Translator":
        x, y = _t(x), _t(y)
        if self.dtype is None:
            big = x.numel() + y.numel() > self.FLOAT64_MAX_ENTRIES
            self.dtype = torch.promote_types(x.dtype, y.dtype) if big else torch.float64
        x, y = x.to(self.dtype), y.to(self.dtype)
        AF._check_pair(x, y)
        self.check_anchor_count(x.shape[0], x.shape[1], where="anchors")
        if self.scale:
            x = self.x_scaling.fit(x).transform(x)
            y = self.y_scaling.fit(y).transform(y)
        self.padding.fit(x.shape[1], y.shape[1])
        self.aligner.fit(self._pad(x), self._pad(y))
        self._fitted = True
        return self

    def transform(self, x):
        self._require_fit()
        t = _t(x, self.dtype)
        if t.shape[1] != self.padding.x_dim:
            raise MedrepError(f"translator was fitted on {self.padding.x_dim}-d source vectors, got {t.shape[1]}-d", where="align")
        if self.scale:
            t = self.x_scaling.transform(t)
        out = self.padding.unpad_target(self.aligner.transform(self._pad(t)))
        if self.scale:
            out = self.y_scaling.inverse_transform(out)
        out = out.to(torch.as_tensor(x).dtype) if torch.as_tensor(x).is_floating_point() else out
        return _like(out, x)

    def _pad(self, t: torch.Tensor) -> torch.Tensor:
        return self.padding.pad(t) if self.aligner.pads_to_equal_width else t

    def fit_transform(self, x, y):
        return self.fit(x, y).transform(x)


class Procrustes(Translator):
    def __init__(self, scale: bool = True):
        super().__init__(Orthogonal(), scale=scale)


class RelativeProjection(_Fitted):
    """Cosine similarity to each anchor (optionally centred on the anchors' mean): a space-agnostic view."""

    def __init__(self, center: bool = True):
        self.center = center

    def fit(self, anchors) -> "RelativeProjection":
        self.anchors = _t(anchors, torch.float64)
        self.mean = self.anchors.mean(0) if self.center else None
        self._fitted = True
        return self

    def transform(self, x):
        self._require_fit()
        return _like(AF.relative_projection(_t(x, torch.float64), self.anchors, self.mean).float(), x)
