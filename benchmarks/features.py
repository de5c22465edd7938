"""Time and peak memory of kNN, linear CKA and the linear probe on synthetic embeddings.

    python benchmarks/features.py [--sizes 10000 100000] [--dim 768]

Goals (issue 5): linear CKA at 100k × 768 under 10 s; kNN at 100k without the N×N matrix (chunked),
within 4 GB.  Peak memory is the process's resident-set high-water mark (ru_maxrss) sampled
after each step, plus tracemalloc's peak for numpy allocations inside the step.
"""
from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

import medrep  # noqa: F401  (repairs torchvision before timm/sklearn users import it)
from medrep.progress import set_quiet
from medrep.features.probes import KNNClassifier, LinearProbe
from medrep.features.similarity import cka_permutation_test, linear_cka


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(name: str, fn):
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  {name:<34} {dt:8.2f} s   numpy peak {peak / 2**20:8.0f} MiB   process max RSS {_rss_mb():8.0f} MiB")
    return out


def synthetic(n: int, dim: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    x = centres[y] + 2.0 * rng.standard_normal((n, dim), dtype=np.float32)
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=20)
    args = ap.parse_args()
    set_quiet(True)
    import torch

    print(f"torch threads: {torch.get_num_threads()}; width {args.dim}; {args.classes} classes")
    # CKA is three N×D×D products: report the machine's float32 GEMM rate so timings can be scaled
    a = np.random.default_rng(0).standard_normal((8192, args.dim), dtype=np.float32)
    t = time.perf_counter()
    for _ in range(3):
        a.T @ a
    rate = 3 * 2 * 8192 * args.dim ** 2 / (time.perf_counter() - t) / 1e9
    print(f"float32 GEMM rate here: {rate:.0f} GFLOP/s; linear CKA needs 6·N·D² FLOP "
          f"({6 * 100_000 * args.dim ** 2 / 1e9:.0f} GFLOP at N = 100k)")
    for n in args.sizes:
        x, y = synthetic(n, args.dim, args.classes, 0)
        x2 = x @ np.linalg.qr(np.random.default_rng(1).normal(size=(args.dim, args.dim)))[0].astype(np.float32)
        n_test = max(1000, n // 10)
        print(f"N = {n:,} (train for kNN / probe: {n - n_test:,}, queries: {n_test:,})")
        _run("linear CKA (biased, feature space)", lambda: linear_cka(x, x2))
        _run("linear CKA (unbiased)", lambda: linear_cka(x, x2, unbiased=True))
        _run("CKA permutation null (200, ≤2000 rows)", lambda: cka_permutation_test(x, x2, n_permutations=200))
        knn = KNNClassifier(args.k).fit(x[n_test:], y[n_test:])
        pred = _run(f"kNN k={args.k}, {n_test:,} queries (chunked)", lambda: knn.predict(x[:n_test]))
        if n <= 20_000:  # all-vs-all is N²·D: 15 TFLOP at 100k, minutes on a laptop
            _run(f"kNN all {n:,} vs all (chunked)", lambda: KNNClassifier(args.k).fit(x, y).predict(x))
        probe = _run("linear probe fit (lbfgs)", lambda: LinearProbe(max_iter=200).fit(x[n_test:], y[n_test:]))
        print(f"    kNN accuracy {np.mean(pred == y[:n_test]):.3f}, probe accuracy {np.mean(probe.predict(x[:n_test]) == y[:n_test]):.3f}")


if __name__ == "__main__":
    main()
