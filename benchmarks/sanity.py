"""Speed of medrep's explanation trust checks against the references, side by side in one process.

    python benchmarks/sanity.py [--images 64] [--maps 1000] [--size 320]

1. Cascading model-parameter randomisation of Grad-CAM on demo-vit, ``--images`` lesion images: medrep's
   sanity job (4 similarities per step) vs Quantus' ``MPRT`` (Spearman) on the same model, the same maps
   (Quantus calls medrep's Grad-CAM as its explain_func) and the same images.  Quantus re-initialises every
   layer that has ``reset_parameters`` (43 on demo-vit) one at a time; medrep randomises 8 units (head, 6
   blocks, embedding).  Reported: each test's total time, and the time per randomisation step.
2. CheXlocalize scoring of ``--maps`` maps against masks at the original size: ``--inputs uniform`` uniform-random
   8 × 8 maps at ``--size`` px (a level change at nearly every pixel, on small images where each map's fixed cost
   weighs most), ``--inputs gradcam`` the protocol's
   real inputs (320 × 320 smooth Grad-CAM-like maps at CheXpert's original sizes, see :func:`gradcam_like_maps`),
   ``--inputs gradcam10`` their 10 × 10 grids: medrep's scorer (the fused numba kernel where numba is installed:
   counts per map, no upsampled map held; its first call, which loads or compiles the kernel, is timed apart) vs the reference
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


#: original (h, w) of the CheXpert images in CheXlocalize's own sample files: ``cxr_dims`` (w, h) of
#: ``sample/gradcam_maps_val/patient64541…_map.pkl`` (2828, 2320) and ``patient64542…`` (2021, 2022), and the README's
#: example pickle (2022, 1751); the ground-truth RLEs of those images have the same sizes.
CHEXPERT_ORIGINALS = ((2320, 2828), (2022, 2021), (1751, 2022))


def gradcam_like_maps(maps: int, generator: torch.Generator) -> torch.Tensor:
    """(maps, 320, 320) maps as CheXlocalize stores its DenseNet121 Grad-CAM (``map``: a (1, 1, 320, 320) tensor per
    CXR and pathology, the 10 × 10 Grad-CAM of the last dense block upsampled bilinearly to the 320 px input): ReLU of a
    random 10 × 10 grid, upsampled the same way."""
    import torch.nn.functional as F

    grid = torch.relu(torch.randn(maps, 1, 10, 10, generator=generator))
    return F.interpolate(grid, size=(320, 320), mode="bilinear", align_corners=False)[:, 0]


def _lesion_masks(sizes, per_size: int = 4) -> dict:
    """A few rectangular lesion masks per original size (about 15% of the image), reused across maps: the
    scoring cost does not depend on which mask a map meets, and 100 distinct 6-megapixel masks would not fit."""
    out = {}
    for h, w in sizes:
        out[(h, w)] = []
        for k in range(per_size):
            m = torch.zeros(h, w, dtype=torch.bool)
            y0, x0 = (k * 37 * h // 320) % (h // 2), (k * 53 * w // 320) % (w // 2)
            m[y0:y0 + h * 2 // 5, x0:x0 + w * 2 // 5] = True
            out[(h, w)].append(m)
    return out


def chexlocalize_scoring(maps: int = 1000, size: int = 320, repeats: int = 3, inputs: str = "uniform") -> dict:
    """``inputs``: ``uniform`` (uniform-random 8 × 8 maps at ``size`` × ``size`` originals: the worst case, a level
    change at nearly every pixel), ``gradcam`` (:func:`gradcam_like_maps` at :data:`CHEXPERT_ORIGINALS`, in turn:
    the protocol's real inputs) or ``gradcam10`` (the same 10 × 10 Grad-CAM grids upsampled straight to the original
    size, as medrep's explain passes a method's map at its own resolution)."""
    import cv2
    import torch.nn.functional as F

    from medrep.explain.chexlocalize import score_original_size

    gen = torch.Generator().manual_seed(0)
    if inputs in ("gradcam", "gradcam10"):
        raw = gradcam_like_maps(maps, gen) if inputs == "gradcam" else torch.relu(torch.randn(maps, 10, 10, generator=gen))
        pool = _lesion_masks(CHEXPERT_ORIGINALS)
        masks = [pool[CHEXPERT_ORIGINALS[i % 3]][(i // 3) % 4] for i in range(maps)]
    else:
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
            resized = F.interpolate(raw[i][None, None], size=tuple(masks[i].shape), mode="bilinear", align_corners=False)
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
    pixels = float(np.mean([m.numel() for m in masks]))
    return {"maps": maps, "inputs": inputs, "size": size if inputs == "uniform" else CHEXPERT_ORIGINALS,
            "mean_pixels": pixels, "medrep": t_ours, "first_call": t_first, "repeats": repeats, "reference": t_ref,
            "ratio": t_ref / t_ours, "hit_agreement": agree_hit, "max_iou_diff": iou_diff,
            "torch_threads": torch.get_num_threads(), "numba_threads": _numba_threads()}


def _numba_threads() -> int | None:
    try:
        import numba
    except ImportError:
        return None
    from medrep.explain.chexlocalize_kernel import threads

    return threads()


def run(images: int = 64, maps: int = 1000, size: int = 320, parts=("randomisation", "chexlocalize"), verbose: bool = True,
        repeats: int = 3, inputs: str = "uniform") -> dict:
    say = print if verbose else (lambda *a, **k: None)
    out: dict = {"threads": torch.get_num_threads()}
    if "chexlocalize" in parts:
        c = out["chexlocalize"] = chexlocalize_scoring(maps, size, repeats, inputs)
        where = f"{size} px" if inputs == "uniform" else "CheXpert original sizes " + ", ".join(f"{h}×{w}" for h, w in c["size"])
        say(f"CheXlocalize scoring, {maps} {inputs} maps at {where} (torch {c['torch_threads']}, numba {c['numba_threads']} "
            f"threads): medrep {c['medrep']:.2f} s, reference logic {c['reference']:.2f} s "
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
    ap.add_argument("--inputs", choices=["uniform", "gradcam", "gradcam10"], default="uniform",
                    help="CheXlocalize maps: uniform-random 8×8 at --size (worst case), Grad-CAM-like 320×320 as CheXlocalize "
                         "stores them (gradcam) or the 10×10 grids themselves (gradcam10), at CheXpert's original sizes")
    ap.add_argument("--only", choices=["randomisation", "chexlocalize"], default=None, help="run one part")
    a = ap.parse_args()
    run(a.images, a.maps, a.size, parts=(a.only,) if a.only else ("randomisation", "chexlocalize"), repeats=a.repeats, inputs=a.inputs)
