"""Chunked cosine nearest neighbours: never materialises the N×N similarity matrix."""
from __future__ import annotations

import numpy as np
import torch

from medrep.errors import MedrepError


def l2_normalise(x: np.ndarray, eps: float = 1e-12, dtype: type = np.float32) -> np.ndarray:
    """Rows scaled to unit length (in ``dtype``); zero rows stay zero instead of becoming NaN."""
    x = np.asarray(x, dtype=dtype)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


def cosine_topk(query: np.ndarray, base: np.ndarray, k: int, exclude_self: bool = False,
                chunk_size: int | None = None, max_block_bytes: int = 256 << 20,
                dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar rows of ``base`` for each row of ``query``: (sims, indices), each (Nq, k).

    Works in query chunks of ``chunk_size`` rows (default: as many as keep one chunk × len(base)
    similarity block under ``max_block_bytes``), so the N×N matrix never exists.
    With ``exclude_self`` (query is base) each row's own index is left out — for leave-one-out kNN.
    ``dtype``: the precision the cosines are computed and ranked in (float64 where near-equal cosines
    must be told apart, as in tightly clustered spaces).  Exactly tied cosines at the k-th place are
    broken towards the lower index, so the neighbour sets never depend on the kernel's order.
    """
    if k < 1:
        raise MedrepError("must be at least 1", where="k")
    n_base = base.shape[0]
    k_eff = k + 1 if exclude_self else k
    if k_eff > n_base:
        raise MedrepError(f"k={k} neighbours asked for but only {n_base - int(exclude_self)} candidates exist", where="k")
    width = np.dtype(dtype).itemsize
    if chunk_size is None:
        chunk_size = max(1, min(8192, max_block_bytes // (width * n_base)))
    q = torch.from_numpy(l2_normalise(query, dtype=dtype))
    b = torch.from_numpy(l2_normalise(base, dtype=dtype))
    sims_out = np.empty((q.shape[0], k), dtype=dtype)
    idx_out = np.empty((q.shape[0], k), dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, q.shape[0], chunk_size):
            s = q[start:start + chunk_size] @ b.T
            if exclude_self:
                rows = torch.arange(s.shape[0])
                s[rows, rows + start] = -float("inf")  # a point is not its own neighbour
            vals, idx = _topk_lowest_index_on_ties(s, k)
            sims_out[start:start + s.shape[0]] = vals.numpy()
            idx_out[start:start + s.shape[0]] = idx.numpy()
    return sims_out, idx_out


def _topk_lowest_index_on_ties(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk`` per row, except that rows with a tie across the k-th place take the tied columns of
    lowest index (a stable sort, only for those rows: ties are rare, the full sort is not cheap)."""
    vals, idx = torch.topk(s, k, dim=1)
    tied = (s >= vals[:, -1:]).sum(1) > k
    if bool(tied.any()):
        rows = tied.nonzero().flatten()
        ordered, order = torch.sort(s[rows], dim=1, descending=True, stable=True)
        vals[rows], idx[rows] = ordered[:, :k], order[:, :k]
    return vals, idx
