"""Speed of medrep's explanation trust checks against the references, side by side in one process.

    python benchmarks/sanity.py [--images 64] [--maps 1000] [--size 320]

1. Cascading model-parameter randomisation of Grad-CAM on demo-vit, ``--images`` lesion images: medrep's
   sanity job (4 similarities per step) vs Quantus' ``MPRT`` (Spearman) on the same model, the same maps
   (Quantus calls medrep's Grad-CAM as its explain_func) and the same images.  Quantus re-initialises every
   layer that has ``reset_parameters`` (43 on demo-vit) one at a time; medrep randomises 8 units (head, 6
   blocks, embedding).  Reported: each test's total time, and the time per randomisation step.
2. CheXlocalize scoring of ``--maps`` maps (8 × 8, as a token grid) against masks at an original size of
   ``--size`` px: medrep's scorer (the fused numba kernel where numba is installed: counts per map, no
   upsampled map held; its first call, which loads or compiles the kernel, is timed apart) vs the reference
   code's logic reimplemented per map (``F.interpolate`` → min-max → ``np.uint8`` → ``cv2.threshold`` with Otsu → IoU; hit by
   ``np.argmax``).  Both give the same figures (checked).
``run(...)`` returns the figures as a dict.  Timings are wall-clock seconds, best of ``--repeats`` interleaved
runs for the scoring; never asserted in tests.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEDREP_QUIET", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import medrep  # noqa: E402,F401


def _images(n: int):
    from medrep.data import load_dataset

    data = load_dataset("demo").split("test")
    masked = [i for i in range(len(data)) if data.has_lesion(i)][:n]
    return data, masked


def randomisation(images: int = 64) -> dict:
    import quantus

    from medrep.explain.methods import explain
    from medrep.explain.sanity import SanityJob, randomisation_units
    from medrep.explain.targets import Target
    from medrep.models import load_encoder

    enc = load_encoder("demo-vit")
    data, idx = _images(images)
    units = randomisation_units(enc)
    job = SanityJob(indices=idx, methods=["gradcam"], tests=["cascading"], target="class", references=None,
                    method_options={}, upsampling="bilinear", batch_size=images, seed=0, topk=10, n_steps=len(units))
    t0 = time.perf_counter()
    job.run(enc, data, 0)
    ours = time.perf_counter() - t0

    x = torch.stack([data[i].image for i in idx])
    y = torch.tensor([data[i].label for i in idx])

    def explain_func(model, inputs, targets, **kwargs):
        pixels = torch.as_tensor(inputs, dtype=torch.float32)
        maps = explain(model, pixels, "gradcam", Target("class", torch.as_tensor(targets).long()))
        return maps[:, None].numpy()

    metric = quantus.MPRT(layer_order="top_down", similarity_func=quantus.similarity_func.correlation_spearman,
                          disable_warnings=True, display_progressbar=False)
    a = explain_func(enc, x.numpy(), y.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        scores = metric(model=enc, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a, explain_func=explain_func,
                        batch_size=images, device="cpu")
        theirs = time.perf_counter() - t0
    their_steps = len(scores) - 1  # "original" plus one entry per layer
    return {"images": images, "medrep": ours, "quantus": theirs, "medrep_steps": len(units), "quantus_steps": their_steps,
            "ratio_total": theirs / ours, "ratio_per_step": (theirs / their_steps) / (ours / len(units))}


def chexlocalize_scoring(maps: int = 1000, size: int = 320, repeats: int = 3) -> dict:
    import cv2
    import torch.nn.functional as F

    from medrep.explain.chexlocalize import score_original_size

    gen = torch.Generator().manual_seed(0)
    raw = torch.rand(maps, 8, 8, generator=gen)
    masks = [torch.zeros(size, size, dtype=torch.bool) for _ in range(maps)]
    for i, m in enumerate(masks):
        y0, x0 = (i * 37) % (size // 2), (i * 53) % (size // 2)
        m[y0:y0 + size // 4, x0:x0 + size // 3] = True
    t0 = time.perf_counter()  # the first call loads (or compiles) the fused kernel: reported apart
    score_original_size(raw[:2], masks[:2], None, None, tuning_grid=False)
    t_first = time.perf_counter() - t0

    def medrep_scores():
        return score_original_size(raw, masks, None, None, tuning_grid=False)

    def reference_scores():
        hits, ious = [], []
        for i in range(maps):  # the reference code's logic, one map at a time
            resized = F.interpolate(raw[i][None, None], size=(size, size), mode="bilinear", align_corners=False)
            sal = resized.squeeze().numpy()
            r, c = np.unravel_index(np.argmax(sal, axis=None), sal.shape)
            gt = masks[i].numpy().astype(np.uint8)
            hits.append(float(gt[r][c] == 1))
            m = resized.squeeze() - resized.min()
            m = (255 * m.div(m.max())).numpy()
            m = np.uint8(m)
            seg = cv2.threshold(m, 0, int(np.max(m)), cv2.THRESH_OTSU)[1] > 0
            inter, union = np.logical_and(seg, gt).sum(), np.logical_or(seg, gt).sum()
            ious.append(inter / union)
        return hits, ious

    t_ours, t_ref = float("inf"), float("inf")
    for _ in range(repeats):  # interleaved, best of each: the machine's load moves both the same way
        t0 = time.perf_counter()
        ours = medrep_scores()
        t_ours = min(t_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        hits, ious = reference_scores()
        t_ref = min(t_ref, time.perf_counter() - t0)
    agree_hit = float(np.mean(np.asarray(hits) == ours["hit"]))
    iou_diff = float(np.max(np.abs(np.asarray(ious) - ours["iou_otsu"])))
    return {"maps": maps, "size": size, "medrep": t_ours, "first_call": t_first, "repeats": repeats, "reference": t_ref, "ratio": t_ref / t_ours,
            "hit_agreement": agree_hit, "max_iou_diff": iou_diff}


def run(images: int = 64, maps: int = 1000, size: int = 320, parts=("randomisation", "chexlocalize"), verbose: bool = True,
        repeats: int = 3) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    out: dict = {"threads": torch.get_num_threads()}
    if "chexlocalize" in parts:
        c = out["chexlocalize"] = chexlocalize_scoring(maps, size, repeats)
        say(f"CheXlocalize scoring, {maps} maps at {size} px: medrep {c['medrep']:.2f} s, reference logic {c['reference']:.2f} s "
            f"→ {c['ratio']:.1f}× (first call {c['first_call']:.1f} s; hits agree on {c['hit_agreement']:.1%}, max |ΔIoU| {c['max_iou_diff']:.1e})")
    if "randomisation" in parts:
        r = out["randomisation"] = randomisation(images)
        say(f"cascading randomisation, Grad-CAM, demo-vit, {images} images: medrep {r['medrep']:.1f} s ({r['medrep_steps']} steps), "
            f"Quantus MPRT {r['quantus']:.1f} s ({r['quantus_steps']} steps) → {r['ratio_total']:.1f}× in total, "
            f"{r['ratio_per_step']:.2f}× per step")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=64, help="lesion images for the randomisation test")
    ap.add_argument("--maps", type=int, default=1000, help="maps scored with the CheXlocalize protocol")
    ap.add_argument("--size", type=int, default=320, help="original image side for the CheXlocalize scoring")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the scoring (best of each side)")
    ap.add_argument("--only", choices=["randomisation", "chexlocalize"], default=None, help="run one part")
    a = ap.parse_args()
    run(a.images, a.maps, a.size, parts=(a.only,) if a.only else ("randomisation", "chexlocalize"), repeats=a.repeats)
