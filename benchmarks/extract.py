"""Throughput of medrep's embedding extraction against a bare ``torch.inference_mode()`` loop.

Both sides embed the same already-decoded images (an in-memory N×C×H×W tensor at the model's input
size) with the same model, batch size and torch threads:
- medrep: ``extract_embeddings`` with the cache disabled (so it really computes): dataset items,
  validation, DataLoader collation, the Encoder's preprocessing, progress/skip bookkeeping;
- bare: slices of the stacked tensor → mean/std normalisation → ``forward_features`` → ``forward_head(pre_logits)``.

    python benchmarks/extract.py [--models demo-vit timm] [--n 64] [--batch-size 32] [--repeats 5] [--threads 2]

Models: ``demo-vit`` (the shipped weights, or the untrained architecture when they are not built yet)
and timm ``vit_small_patch16_224`` at 224 px (pretrained=False).  Both sides are warmed up, then timed
alternately; the medians are printed with the ratio medrep/bare throughput (goal ≥ 0.9).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import medrep  # noqa: E402,F401  (repairs torchvision before timm is imported)
import numpy as np  # noqa: E402
import torch  # noqa: E402

GOAL = 0.9


def demo_vit():
    from medrep.errors import MedrepError
    from medrep.models import load_encoder

    try:
        return load_encoder("demo-vit"), "demo-vit"
    except MedrepError:
        from medrep.data.phantoms import CLASSES
        from medrep.models.demo import BUILDERS, DEMO_PREPROCESSING
        from medrep.models.timm_adapter import TimmEncoder

        torch.manual_seed(0)
        module = BUILDERS["demo-vit"]().eval()
        enc = TimmEncoder(module, DEMO_PREPROCESSING, name="demo-vit", class_names=CLASSES, source={"spec": "demo-vit"})
        return enc, "demo-vit (untrained: weights not built yet)"


def timm_vit_small():
    from medrep.models import load_encoder

    torch.manual_seed(0)
    return load_encoder("timm:vit_small_patch16_224?pretrained=false"), "timm:vit_small_patch16_224 @224 px (pretrained=False)"


MODELS = {"demo-vit": demo_vit, "timm": timm_vit_small}


def bare_loop(module, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, batch_size: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for lo in range(0, images.shape[0], batch_size):
            x = (images[lo:lo + batch_size] - mean) / std
            out.append(module.forward_head(module.forward_features(x), pre_logits=True).float().cpu().numpy())
    return np.concatenate(out)


def bench(label: str, enc, n: int, batch_size: int, repeats: int, warmup: int) -> float:
    from medrep.data.base import TensorDataset
    from medrep.features import EmbeddingCache, extract_embeddings

    prep = enc.preprocessing
    h, w = prep.size
    images = torch.rand(n, prep.channels, h, w, generator=torch.Generator().manual_seed(0))
    ds = TensorDataset(images, np.arange(n) % 3, ["a", "b", "c"], name="bench")
    mean = torch.tensor(prep.mean).view(1, -1, 1, 1)
    std = torch.tensor(prep.std).view(1, -1, 1, 1)
    no_cache = EmbeddingCache(enabled=False)
    module = enc.module.eval()

    def run_medrep():
        return extract_embeddings(enc, ds, batch_size=batch_size, cache=no_cache).vectors

    def run_bare():
        return bare_loop(module, images, mean, std, batch_size)

    a, b = run_medrep(), run_bare()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # the two sides compute the same thing
    for _ in range(max(0, warmup - 1)):
        run_medrep(), run_bare()
    times = {"medrep": [], "bare": []}
    cpu = {"medrep": [], "bare": []}
    for r in range(repeats):
        order = ("medrep", "bare") if r % 2 == 0 else ("bare", "medrep")  # alternate against load drift
        for side in order:
            fn = run_medrep if side == "medrep" else run_bare
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[side].append(time.perf_counter() - t)
            cpu[side].append(time.process_time() - c)
    tm, tb = statistics.median(times["medrep"]), statistics.median(times["bare"])
    ratio = tb / tm
    paired = statistics.median(b / m for b, m in zip(times["bare"], times["medrep"]))
    cpu_ratio = statistics.median(cpu["bare"]) / statistics.median(cpu["medrep"])
    print(f"{label}")
    print(f"  {n} images {prep.channels}×{h}×{w}, batch {batch_size}, {torch.get_num_threads()} threads, "
          f"{repeats} repeats (median)")
    print(f"  bare inference_mode loop : {tb:8.3f} s  {n / tb:8.1f} img/s   (all: {', '.join(f'{t:.3f}' for t in times['bare'])})")
    print(f"  medrep extract_embeddings: {tm:8.3f} s  {n / tm:8.1f} img/s   (all: {', '.join(f'{t:.3f}' for t in times['medrep'])})")
    print(f"  throughput ratio medrep/bare = {ratio:.3f}  (goal ≥ {GOAL}: {'met' if ratio >= GOAL else 'NOT met'}); "
          f"median of back-to-back pairs {paired:.3f}; CPU-time ratio {cpu_ratio:.3f}")
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--n", type=int, default=None, help="images (default: 256 for demo-vit, 64 for timm)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    from medrep.progress import set_quiet

    set_quiet(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    ratios = {}
    for name in args.models:
        enc, label = MODELS[name]()
        n = args.n or (256 if name == "demo-vit" else 64)
        ratios[name] = bench(label, enc, n, args.batch_size, args.repeats, args.warmup)
    print("summary: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()) + f"  (goal ≥ {GOAL})")


if __name__ == "__main__":
    main()
