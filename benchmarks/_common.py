"""Helpers shared by the benchmark scripts (imported as ``_common``: the scripts run with benchmarks/ on sys.path)."""
from __future__ import annotations

import time

from torch import nn


def best_of(fn, repeats: int) -> float:
    """Best (smallest) wall-clock seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class EncoderCall(nn.Module):
    """A medrep encoder's ``logits`` (default) or ``embed`` as a plain module, for libraries that take an nn.Module."""

    def __init__(self, encoder, method: str = "logits"):
        super().__init__()
        self.encoder = encoder
        self.method = method

    def forward(self, x):
        return getattr(self.encoder, self.method)(x)
