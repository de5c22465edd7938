"""CPU speed options and the Ray backend's overhead, each measured side by side in this one process.

    python benchmarks/cpu_speed.py [--n 512] [--chunk-size 64] [--batch-size 32] [--repeats 3] [--sections ...]

Sections (all on demo models and the embedded phantoms, 1 torch thread on every side):
- ``compile``: ``extract_embeddings`` eager vs ``compile_extraction=True`` (torch.compile); the one-off
  compile time is reported apart, the embeddings' largest difference beside it;
- ``bf16``: float32 vs ``dtype="bfloat16"`` (autocast) extraction throughput, with the lowest and median
  per-image cosine to float32 (fidelity goal: ≥ 0.99);
- ``ray``: the Ray backend with 1 worker vs the local backend on the same job (goal ≥ 0.9 of local), the
  per-unit scheduling cost ((ray − local) / units), worker start-up timed apart; 1 vs 2 workers with one
  thread each (goal ≥ 1.7×); and the time exponent in N for extraction on Ray (log-log slope).
Timings alternate the sides against load drift and report medians.  On a shared, loaded machine the ratios
are indicative only: the load average is printed at the start and end.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEDREP_QUIET", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import medrep  # noqa: E402,F401  (repairs torchvision before timm is imported)
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _data(n: int):
    from medrep.data.base import Subset
    from medrep.data.phantoms import PhantomConfig, load_phantoms

    train = load_phantoms(PhantomConfig()).split("train")  # 3,000 phantoms at 64 px
    return Subset(train, list(range(min(n, len(train)))))


def _timed(fn, repeats: int, sides: dict) -> dict:
    times = {k: [] for k in sides}
    for r in range(repeats):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for k in order:
            t = time.perf_counter()
            sides[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def bench_compile(ds, args) -> None:
    from medrep.embeddings import EmbeddingCache, extract_embeddings
    from medrep.models import load_encoder

    eager, comp = load_encoder("demo-cnn"), load_encoder("demo-cnn")
    comp.compile_extraction = True
    nc = EmbeddingCache(enabled=False)
    t = time.perf_counter()
    c = extract_embeddings(comp, ds, batch_size=args.batch_size, cache=nc).vectors  # pays the compile
    first = time.perf_counter() - t
    e = extract_embeddings(eager, ds, batch_size=args.batch_size, cache=nc).vectors
    med = _timed(None, args.repeats, {
        "eager": lambda: extract_embeddings(eager, ds, batch_size=args.batch_size, cache=nc),
        "compiled": lambda: extract_embeddings(comp, ds, batch_size=args.batch_size, cache=nc)})
    n = len(ds)
    print(f"[compile] demo-cnn, {n} images, batch {args.batch_size}: eager {n / med['eager']:.1f} img/s, "
          f"compiled {n / med['compiled']:.1f} img/s, ratio compiled/eager {med['eager'] / med['compiled']:.3f}; "
          f"first compiled run (incl. compile) {first:.1f} s; max |compiled − eager| {np.abs(c - e).max():.2e}")


def bench_bf16(ds, args) -> None:
    from medrep.embeddings import EmbeddingCache, extract_embeddings
    from medrep.models import load_encoder

    nc = EmbeddingCache(enabled=False)
    for spec in ("demo-cnn", "demo-vit"):
        enc = load_encoder(spec)
        f32 = extract_embeddings(enc, ds, batch_size=args.batch_size, cache=nc).vectors
        b16 = extract_embeddings(enc, ds, batch_size=args.batch_size, dtype="bfloat16", cache=nc).vectors
        cos = _cos(f32, b16)
        med = _timed(None, args.repeats, {
            "float32": lambda: extract_embeddings(enc, ds, batch_size=args.batch_size, cache=nc),
            "bfloat16": lambda: extract_embeddings(enc, ds, batch_size=args.batch_size, dtype="bfloat16", cache=nc)})
        n = len(ds)
        print(f"[bf16] {spec}, {n} images: float32 {n / med['float32']:.1f} img/s, bfloat16 autocast "
              f"{n / med['bfloat16']:.1f} img/s, ratio bf16/f32 {med['float32'] / med['bfloat16']:.3f}; "
              f"cosine to float32 min {cos.min():.4f} median {np.median(cos):.4f} (goal ≥ 0.99)")


def _ray_extract(backend, enc, ds, args):
    from medrep.embeddings import EmbeddingCache, extract_embeddings

    return extract_embeddings(enc, ds, batch_size=args.batch_size, chunk_size=args.chunk_size,
                              cache=EmbeddingCache(enabled=False), backend=backend)


def bench_ray(ds, args) -> None:
    import ray

    from medrep.backends import get_backend
    from medrep.data.base import Subset
    from medrep.models import load_encoder

    # 3 logical CPUs so the 1-worker and the 2-worker pools are both alive for the alternated timing (with 2 the
    # second pool's actors wait for ever); only one pool computes at a time, so 2 cores are still what runs.
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    enc = load_encoder("demo-cnn")
    local = get_backend("local")
    pools = {}
    for w in (1, 2):
        pools[w] = get_backend("ray", workers=w, device="cpu")
        t = time.perf_counter()
        _ray_extract(pools[w], enc, Subset(ds, list(range(args.chunk_size))), args)  # starts the actors
        print(f"[ray] start-up of {w} worker(s) + first chunk: {time.perf_counter() - t:.1f} s (reported apart)")
    units = math.ceil(len(ds) / args.chunk_size)
    med = _timed(None, args.repeats, {"local": lambda: _ray_extract(local, enc, ds, args),
                                      "ray1": lambda: _ray_extract(pools[1], enc, ds, args),
                                      "ray2": lambda: _ray_extract(pools[2], enc, ds, args)})
    n = len(ds)
    print(f"[ray] extraction, demo-cnn, {n} images in {units} units of {args.chunk_size}: local {n / med['local']:.1f} img/s, "
          f"ray 1 worker {n / med['ray1']:.1f} img/s (ratio {med['local'] / med['ray1']:.3f}, goal ≥ 0.9), "
          f"per-unit scheduling cost {(med['ray1'] - med['local']) / units * 1000:.1f} ms; "
          f"2 vs 1 workers {med['ray1'] / med['ray2']:.2f}× (goal ≥ 1.7×)")
    sizes = [max(args.chunk_size, n // 4), max(args.chunk_size, n // 2), n]
    ts = [_timed(None, 1, {"t": lambda m=m: _ray_extract(pools[1], enc, Subset(ds, list(range(m))), args)})["t"] for m in sizes]
    slope = np.polyfit(np.log(sizes), np.log(ts), 1)[0]
    print(f"[ray] extraction time on 1 worker at N = {sizes}: {', '.join(f'{t:.2f} s' for t in ts)}; exponent {slope:.2f}")
    for p in pools.values():
        p.close()
    ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="images per job (the issue's goal job is 2,000)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--chunk-size", type=int, default=64, help="images per Ray unit")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sections", nargs="+", default=["compile", "bf16", "ray"], choices=["compile", "bf16", "ray"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads 1")
    ds = _data(args.n)
    for name in args.sections:
        {"compile": bench_compile, "bf16": bench_bf16, "ray": bench_ray}[name](ds, args)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
