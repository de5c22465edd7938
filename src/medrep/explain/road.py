"""ROAD — RemOve And Debias (Rong et al., ICML 2022): the target score after removing a fixed share of
pixels in the map's order, the removed pixels filled by *noisy linear imputation* so that the shape of the
removed region itself leaks no class information.

Imputation: every removed pixel equals the weighted mean of its 8 neighbours (direct neighbours weight 1/6,
diagonal ones 1/12, only neighbours inside the image), which couples the removed pixels into one sparse
linear system per image (solved directly with SuperLU, all channels as right-hand sides of one
factorisation); then a little Gaussian noise (σ = ``noise`` in raw [0, 1] pixel units) is added to the
imputed pixels.  (Conjugate gradients on the same system were 10× slower on a CPU: large holes make it
ill-conditioned.)  Orders: most relevant first (MoRF, the
score should fall fast) and least relevant first (LeRF, it should stay).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from medrep.errors import MedrepError
from medrep.explain.faithfulness import pixel_ranks
from medrep.explain.targets import Target, model_output, resolve_classes, score_from_output
from medrep.models.base import Encoder

ORDERS = ("morf", "lerf")
NEIGHBOURS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
              (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))


def impute(image: np.ndarray, removed: np.ndarray, noise: float = 0.01, rng: np.random.Generator | None = None) -> np.ndarray:
    """(C, H, W) image with the ``removed`` (H, W) pixels replaced by noisy linear imputation."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import splu

    c, h, w = image.shape
    idx = np.flatnonzero(removed.ravel())
    if idx.size == 0:
        return image.copy()
    unknown = -np.ones(h * w, dtype=np.int64)
    unknown[idx] = np.arange(idx.size)
    ys, xs = np.divmod(idx, w)
    flat = image.reshape(c, -1).astype(np.float64)
    rows, cols, vals = [np.arange(idx.size)], [np.arange(idx.size)], []
    diag = np.zeros(idx.size)
    rhs = np.zeros((idx.size, c))
    for dy, dx, weight in NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        me, nb = np.flatnonzero(inside), (ny * w + nx)[inside]
        diag[me] += weight
        nb_unknown = unknown[nb]
        free = nb_unknown >= 0
        rows.append(me[free])
        cols.append(nb_unknown[free])
        vals.append(np.full(int(free.sum()), -weight))
        np.add.at(rhs, me[~free], weight * flat[:, nb[~free]].T)
    matrix = csc_matrix((np.concatenate([diag] + vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(idx.size, idx.size))
    solved = splu(matrix).solve(rhs)
    rng = rng if rng is not None else np.random.default_rng(0)
    out = flat.copy()
    out[:, idx] = solved.T + noise * rng.standard_normal((c, idx.size))
    return out.reshape(c, h, w).astype(image.dtype)


def road_curves(encoder: Encoder, pixels: torch.Tensor, maps: torch.Tensor, target: Target,
                percents: Sequence[float] = (10, 20, 30, 50, 70, 90), noise: float = 0.01, seed: int = 0,
                batch_size: int = 64) -> dict[str, torch.Tensor]:
    """{'morf': (B, P), 'lerf': (B, P)} target probabilities after removing each percentage of pixels."""
    b, c, h, w = pixels.shape
    if tuple(maps.shape) != (b, h, w):
        raise MedrepError(f"maps {tuple(maps.shape)} do not match images {tuple(pixels.shape)}", where="maps")
    target = resolve_classes(encoder, pixels.to(encoder.device, encoder.dtype), target)
    ranks = pixel_ranks(maps.float().cpu()).view(b, h, w).numpy()
    images = pixels.detach().float().cpu().numpy()
    rng = np.random.default_rng(seed)
    built = []
    for order in ORDERS:
        for p in percents:
            n = int(round(h * w * p / 100))
            for i in range(b):
                removed = ranks[i] < n if order == "morf" else ranks[i] >= h * w - n
                built.append(impute(images[i], removed, noise, rng))
    stack = torch.as_tensor(np.stack(built))
    rows_t = torch.arange(b).repeat(len(ORDERS) * len(percents))  # rows image-fastest, as built
    scores = torch.empty(len(built))
    with torch.no_grad():
        for start in range(0, len(built), max(1, batch_size)):
            sel = rows_t[start:start + batch_size].to(encoder.device)
            sub = target.index(sel)
            x = stack[start:start + batch_size].to(encoder.device, encoder.dtype)
            scores[start:start + sel.numel()] = score_from_output(model_output(encoder, x, sub), sub, True).float().cpu()
    per = scores.view(len(ORDERS), len(percents), b)
    return {order: per[k].T.contiguous() for k, order in enumerate(ORDERS)}
