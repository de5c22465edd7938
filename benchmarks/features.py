"""Time and peak memory of kNN, linear CKA and the linear probe on synthetic embeddings.

    python benchmarks/features.py [--sizes 10000 100000] [--dim 768]

Goals (issue 5): linear CKA at 100k × 768 under 10 s; kNN at 100k without the N×N matrix (chunked),
within 4 GB.  Peak memory is each step's resident-set high-water mark (VmHWM, reset before the step
through /proc/self/clear_refs on Linux), plus tracemalloc's peak for numpy allocations inside the step.
``run(...)`` returns the figures as records (benchmarks/run_all.py uses it).
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


def _reset_peak_rss() -> bool:
    """Linux: reset the process's resident-set high-water mark so the next reading is this step's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _rss_mb()


def measure(name: str, fn, records: list | None = None, n: int | None = None, verbose: bool = True):
    """Run ``fn`` once: seconds, numpy peak (tracemalloc) and the step's peak RSS; appended to ``records``."""
    _reset_peak_rss()
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = _peak_rss_mb()
    if verbose:
        print(f"  {name:<34} {dt:8.2f} s   numpy peak {peak / 2**20:8.0f} MiB   peak RSS {rss:8.0f} MiB")
    if records is not None:
        records.append({"step": name, "n": n, "seconds": dt, "numpy_peak_mib": peak / 2**20, "peak_rss_mib": rss})
    return out




def synthetic(n: int, dim: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    x = centres[y] + 2.0 * rng.standard_normal((n, dim), dtype=np.float32)
    return x, y


def gemm_rate(dim: int = 768) -> float:
    """This machine's float32 GEMM rate in GFLOP/s (CKA is three N×D×D products)."""
    a = np.random.default_rng(0).standard_normal((8192, dim), dtype=np.float32)
    t = time.perf_counter()
    for _ in range(3):
        a.T @ a
    return 3 * 2 * 8192 * dim ** 2 / (time.perf_counter() - t) / 1e9


STEPS = {
    "cka": "linear CKA (biased, feature space)",
    "cka_unbiased": "linear CKA (unbiased)",
    "cka_perm": "CKA permutation null (≤2000 rows)",
    "knn": "kNN, N/10 queries (chunked)",
    "knn_all": "kNN all vs all (chunked)",
    "probe": "linear probe fit (lbfgs)",
}


def run(sizes=(10_000, 100_000), dim: int = 768, classes: int = 10, k: int = 20, all_vs_all_max: int = 20_000,
        permutations: int = 200, probe_iter: int = 200, steps=None, verbose: bool = True) -> list[dict]:
    """Per size: linear CKA (biased, unbiased), the permutation null, kNN queries, all-vs-all kNN (small N only)
    and the probe fit (``steps``: a subset of :data:`STEPS`' keys), each with seconds and peak memory.

    Returns records {key, step, n, seconds, numpy_peak_mib, peak_rss_mib}.
    """
    set_quiet(True)
    steps = set(STEPS) if steps is None else set(steps)
    records: list[dict] = []
    for n in sizes:
        x, y = synthetic(n, dim, classes, 0)
        x2 = x @ np.linalg.qr(np.random.default_rng(1).normal(size=(dim, dim)))[0].astype(np.float32)
        n_test = max(min(1000, n // 2), n // 10)
        if verbose:
            print(f"N = {n:,} (train for kNN / probe: {n - n_test:,}, queries: {n_test:,})")

        def m(key, fn):
            if key not in steps:
                return None
            start = len(records)
            out = measure(STEPS[key], fn, records, n, verbose)
            records[start]["key"] = key
            return out

        m("cka", lambda: linear_cka(x, x2))
        m("cka_unbiased", lambda: linear_cka(x, x2, unbiased=True))
        m("cka_perm", lambda: cka_permutation_test(x, x2, n_permutations=permutations))
        knn = KNNClassifier(k).fit(x[n_test:], y[n_test:])
        pred = m("knn", lambda: knn.predict(x[:n_test]))
        if n <= all_vs_all_max:  # all-vs-all is N²·D: 15 TFLOP at 100k, minutes on a laptop
            m("knn_all", lambda: KNNClassifier(k).fit(x, y).predict(x))
        probe = m("probe", lambda: LinearProbe(max_iter=probe_iter).fit(x[n_test:], y[n_test:]))
        if verbose and pred is not None and probe is not None:
            print(f"    kNN accuracy {np.mean(pred == y[:n_test]):.3f}, "
                  f"probe accuracy {np.mean(probe.predict(x[:n_test]) == y[:n_test]):.3f}")
        del x, x2, knn, probe
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=20)
    args = ap.parse_args()
    import torch

    print(f"torch threads: {torch.get_num_threads()}; width {args.dim}; {args.classes} classes")
    rate = gemm_rate(args.dim)
    print(f"float32 GEMM rate here: {rate:.0f} GFLOP/s; linear CKA needs 6·N·D² FLOP "
          f"({6 * 100_000 * args.dim ** 2 / 1e9:.0f} GFLOP at N = 100k)")
    run(args.sizes, args.dim, args.classes, args.k)


if __name__ == "__main__":
    main()
