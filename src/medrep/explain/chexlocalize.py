"""The CheXlocalize protocol (Saporta et al., Nature Machine Intelligence 2022; reference code
rajpurkarlab/cheXlocalize): maps scored at the **original** image size.

* the map at the method's own resolution is upsampled bilinearly (align_corners=False) to the original image;
* min-max normalised and quantised to 8 bits in float32 (⌊255·m⌋, as the reference code's ``np.uint8``);
* binarised with Otsu's threshold of that 8-bit map (pixels strictly above it; scikit-image's
  ``threshold_otsu`` on the same map gives the same threshold), or with a per-class threshold on the
  normalised map tuned on another split to maximise mIoU;
* optional probability cut-off: where the target class's probability is below it, the predicted
  segmentation is empty;
* **hit**: the map's maximum lies inside the mask; ties are broken as the reference code's ``np.argmax``
  does — the first maximal pixel in row-major order;
* **IoU** per image; mIoU per class on all images, or on true positives only (images whose predicted
  segmentation is not empty; the others are left out, as the reference code's NaN);
* 1,000-replicate percentile bootstrap of the mean over images (per class and overall);
* the **human benchmark**, where the data carries a second reader (CheXlocalize's ``hb_*`` files): its hit rate
  (a hit when any point the reader marked as most representative, truncated to whole pixels as the reference
  code's ``int()``, lies inside the mask; no point marked: a miss) and its mIoU (the reader's mask against the
  ground truth, on the same images and under the same all / true-positives rule), and the model's **percentage
  decrease** from it, (human − model) / human · 100 (the reference code's ``calculate_percentage_decrease.py``),
  with a paired bootstrap interval: the same resampled images (whole patients where patient ids exist) for both,
  each side's mean over its own non-NaN images, as the reference code's per-side pandas means.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medrep.explain.methods import normalize_maps
from medrep.intervals import percentile_bounds

#: thresholds a tuned per-class threshold is chosen from (on the min-max normalised map)
TUNING_GRID = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2).tolist())
TIE_BREAK = "first maximal pixel in row-major order (the reference code's np.argmax)"
NO_HUMAN_BENCHMARK = "no human benchmark in this data (no second reader's annotations)"
NO_HUMAN_POINTS = "the second reader marked no most-representative points in this data"
HUMAN_HIT = ("a hit when a point the second reader marked as most representative (x, y truncated to whole pixels) lies "
             "inside the mask; an image without a marked point is a miss")


def otsu_thresholds(levels: torch.Tensor) -> torch.Tensor:
    """(B,) Otsu's threshold of each (B, N) map of integer levels 0…255: the level t maximising the
    between-class variance of {≤ t} and {> t}, the first such level on ties (scikit-image's rule)."""
    b = levels.shape[0]
    offsets = torch.arange(b, device=levels.device).view(-1, 1) * 256
    hist = torch.bincount((levels.long() + offsets).flatten(), minlength=b * 256).view(b, 256)
    return otsu_from_histograms(hist)


def otsu_from_histograms(hist: torch.Tensor) -> torch.Tensor:
    """(B,) Otsu's threshold of each (B, 256) histogram of 8-bit levels (see :func:`otsu_thresholds`)."""
    hist = hist.double()
    centers = torch.arange(256, dtype=torch.float64, device=hist.device)
    w1 = hist.cumsum(1)
    w2 = hist.flip(1).cumsum(1).flip(1)
    m1 = (hist * centers).cumsum(1) / w1.clamp_min(1e-300)
    m2 = (hist * centers).flip(1).cumsum(1).flip(1) / w2.clamp_min(1e-300)
    between = w1[:, :-1] * w2[:, 1:] * (m1[:, :-1] - m2[:, 1:]) ** 2
    # scikit-image histograms the image's own range [min, max]: levels outside it cannot be chosen
    present = hist > 0
    lo = torch.where(present, centers, torch.full_like(centers, 256)).amin(1)
    hi = torch.where(present, centers, torch.full_like(centers, -1)).amax(1)
    valid = (centers[None, :-1] >= lo[:, None]) & (centers[None, :-1] < hi[:, None])
    between = torch.where(valid, between, torch.full_like(between, -1.0))
    return torch.where(hi > lo, between.argmax(1).double(), lo)


def to_levels(maps: torch.Tensor) -> torch.Tensor:
    """(B, H, W) uint8 levels as the reference code makes them, in float32: 255 · (m − min) / max(m − min),
    truncated (``np.uint8``); a constant map is all zeros."""
    flat = maps.float().flatten(1)
    shifted = flat - flat.amin(1, keepdim=True)
    top = shifted.amax(1, keepdim=True)
    scaled = torch.where(top > 0, 255 * (shifted / top.clamp_min(torch.finfo(torch.float32).tiny)), torch.zeros_like(shifted))
    return scaled.to(torch.uint8).view(maps.shape)


def segment(maps: torch.Tensor, thresholds: torch.Tensor | None = None) -> torch.Tensor:
    """Bool (B, H, W): Otsu's segmentation (``thresholds`` None) or normalised map > threshold per image."""
    if thresholds is None:
        levels = to_levels(maps)
        t = otsu_thresholds(levels.flatten(1))
        return levels > t.to(torch.uint8).view(-1, 1, 1)
    return normalize_maps(maps.double()) > thresholds.double().view(-1, 1, 1)


def hits(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B,) 1 where the first maximal pixel (row-major) lies in the mask."""
    flat = maps.flatten(1)
    first = flat.argmax(1)  # torch.argmax returns the first maximal index, like np.argmax
    return masks.flatten(1).gather(1, first[:, None])[:, 0].double()


def ious(predicted: torch.Tensor, masks: torch.Tensor, true_positives_only: bool) -> torch.Tensor:
    """(B,) IoU of predicted and true masks; NaN for an empty prediction when ``true_positives_only``."""
    inter = (predicted & masks).flatten(1).sum(1).double()
    union = (predicted | masks).flatten(1).sum(1).double()
    out = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    if true_positives_only:
        out = torch.where(predicted.flatten(1).any(1), out, torch.full_like(out, float("nan")))
    return out


def score_original_size(raw: torch.Tensor, masks: Sequence[torch.Tensor], probabilities: torch.Tensor | None,
                        cutoff: float | None, tuning_grid: bool = True, chunk: int = 32) -> dict[str, np.ndarray]:
    """Per-image CheXlocalize scores of ``raw`` (B, h, w) maps against masks at each image's original size:
    hit, IoU with Otsu's segmentation (all images), whether the segmentation is non-empty, and (``tuning_grid``)
    the IoU at every threshold of :data:`TUNING_GRID` ((B, T), for tuning; NaN without it).  Images of one
    original size are scored together, ``chunk`` at a time (original images can be large)."""
    b = raw.shape[0]
    out = {"hit": np.zeros(b), "iou_otsu": np.zeros(b), "predicted": np.zeros(b, dtype=bool),
           "iou_grid": np.zeros((b, len(TUNING_GRID))), "predicted_grid": np.zeros((b, len(TUNING_GRID)), dtype=bool)}
    grid = torch.tensor(TUNING_GRID, dtype=torch.float64, device=raw.device)
    empty = torch.zeros(b, dtype=torch.bool, device=raw.device)
    if cutoff is not None and probabilities is not None:
        empty = probabilities.to(raw.device) < cutoff
    sizes: dict[tuple[int, int], list[int]] = {}
    for i, mask in enumerate(masks):
        sizes.setdefault(tuple(mask.shape[-2:]), []).append(i)
    if not tuning_grid:
        out["iou_grid"][:] = np.nan
    fused = _fused_kernel() if raw.device.type == "cpu" and _all_finite(raw) else None
    for size, all_rows in sizes.items():
        if fused is not None and size[0] * size[1] > fused.SMALL_PLANE:
            _score_rows_fused(out, raw, masks, all_rows, empty, grid if tuning_grid else None)
            continue
        for at in range(0, len(all_rows), chunk):
            _score_rows(out, raw, masks, all_rows[at:at + chunk], size, empty, grid if tuning_grid else None)
    return out


def _all_finite(raw: torch.Tensor) -> bool:
    """Every value finite: the minimum and maximum are (torch's min / max propagate NaN); 25× faster than
    ``torch.isfinite(raw).all()``, which builds a boolean tensor of the maps' size."""
    if raw.numel() == 0:
        return True
    lo, hi = torch.aminmax(raw.detach())
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def _fused_kernel():
    """The fused numba kernel module where it can be used here, else None (imported on first use: numba's
    import takes seconds, and only this scoring needs it)."""
    try:
        from medrep.explain import chexlocalize_kernel
    except RuntimeError:  # numba with no writable cache location anywhere: the torch path scores the same
        return None
    return chexlocalize_kernel if chexlocalize_kernel.available() else None


def _score_rows_fused(out: dict[str, np.ndarray], raw: torch.Tensor, masks: Sequence[torch.Tensor], rows: list[int],
                      empty: torch.Tensor, grid: torch.Tensor | None) -> None:
    """Score the images ``rows`` (one original size) into ``out`` from per-map counts
    (:mod:`medrep.explain.chexlocalize_kernel`): the same figures as :func:`_score_rows`, without ever holding an
    upsampled map."""
    grid_np = np.zeros(0) if grid is None else grid.cpu().numpy()
    maps = raw.detach().float().cpu().numpy()[rows]
    binary = [torch.as_tensor(masks[i]).detach().cpu().numpy().astype(bool, copy=False).view(np.uint8) for i in rows]
    hist, first, grid_hist = _fused_kernel().fused_counts(maps, binary, grid_np)
    hit = np.array([m.reshape(-1)[f] for m, f in zip(binary, first)], dtype=np.float64)
    _store_counts(out, rows, torch.from_numpy(hist), hit, grid_hist, ~empty[rows].cpu().numpy())


def _store_counts(out: dict[str, np.ndarray], rows: list[int], hist: torch.Tensor, hit: np.ndarray,
                  grid_hist: np.ndarray, keep: np.ndarray) -> None:
    """Hit, Otsu IoU and (with grid counts) the IoU at each grid threshold, from the kernel's counts."""
    inside = hist[:, 1].sum(1).numpy()
    above = torch.arange(256)[None, :] > otsu_from_histograms(hist.sum(1))[:, None]
    predicted = (hist.sum(1) * above).sum(1).numpy() * keep
    inter = (hist[:, 1] * above).sum(1).numpy() * keep
    out["iou_otsu"][rows] = _iou_from_counts(inter, predicted, inside)
    out["predicted"][rows] = predicted > 0
    out["hit"][rows] = hit
    for t in range(grid_hist.shape[2] - 1):  # exceeding threshold t = exceeding more than t of the sorted grid
        graded = grid_hist[:, :, t + 1:].sum(2)
        pred_t, inter_t = graded.sum(1) * keep, graded[:, 1] * keep
        out["iou_grid"][rows, t] = _iou_from_counts(inter_t, pred_t, inside)
        out["predicted_grid"][rows, t] = pred_t > 0


def _iou_from_counts(inter: np.ndarray, predicted: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """IoU from pixel counts, 0 where both prediction and mask are empty (as :func:`ious`)."""
    union = (predicted + inside - inter).astype(np.float64)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _score_rows(out: dict[str, np.ndarray], raw: torch.Tensor, masks: Sequence[torch.Tensor], rows: list[int],
                size: tuple[int, int], empty: torch.Tensor, grid: torch.Tensor | None) -> None:
    """Score the images ``rows`` (one original size) into ``out``."""
    sel = torch.as_tensor(rows, device=raw.device)
    mask = torch.stack([masks[i] for i in rows]).to(device=raw.device, dtype=torch.bool)
    up = F.interpolate(raw[sel][:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    keep = ~empty[sel].view(-1, 1, 1)
    seg = segment(up) & keep
    out["hit"][rows] = hits(up, mask).cpu().numpy()
    out["iou_otsu"][rows] = ious(seg, mask, False).cpu().numpy()
    out["predicted"][rows] = seg.flatten(1).any(1).cpu().numpy()
    if grid is None:
        return
    norm = normalize_maps(up.double())
    for t, level in enumerate(grid):  # one threshold at a time: memory stays at one chunk of maps
        graded = (norm > level) & keep
        out["iou_grid"][rows, t] = ious(graded, mask, False).cpu().numpy()
        out["predicted_grid"][rows, t] = graded.flatten(1).any(1).cpu().numpy()


def tune_thresholds(iou_grid: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Per class, the grid threshold with the highest mean IoU on the tuning images (the lowest on ties)."""
    grid = np.asarray(TUNING_GRID)
    tuned = {}
    for c, name in enumerate(classes):
        sel = labels == c
        if sel.any():
            tuned[name] = float(grid[int(np.argmax(iou_grid[sel].mean(0)))])
    return tuned


def percentile_bootstrap(values: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """Mean (NaNs left out) with the 2.5 / 97.5 percentiles of ``n_boot`` resampled means."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    low, high = percentile_bounds(boots)
    return {"value": float(v.mean()), "low": low, "high": high, "n": int(v.size)}


def model_ious(per_image: dict[str, np.ndarray], labels: np.ndarray, classes: Sequence[str], threshold: str,
               tuned: dict[str, float] | None, miou_on: str) -> np.ndarray:
    """Per-image IoU of the model's segmentation under the threshold rule, NaN where ``miou_on`` leaves it out."""
    iou, predicted = per_image["iou_otsu"].astype(np.float64), per_image["predicted"].astype(bool)
    if threshold == "tuned" and tuned:
        grid = list(TUNING_GRID)
        for i, c in enumerate(labels):
            name = classes[int(c)]
            if name in tuned:
                iou[i] = per_image["iou_grid"][i][grid.index(tuned[name])]
                predicted[i] = per_image["predicted_grid"][i][grid.index(tuned[name])]
    if miou_on == "true-positives":
        iou = np.where(predicted, iou, np.nan)
    return iou


def summarise(per_image: dict[str, np.ndarray], labels: np.ndarray, classes: Sequence[str], *, threshold: str,
              tuned: dict[str, float] | None, miou_on: str, cutoff: float | None, n_boot: int, seed: int,
              human: dict[str, np.ndarray] | None = None, groups: np.ndarray | None = None) -> dict[str, Any]:
    """hit_rate and miou (overall and per class, each with its bootstrap interval) of one method; with ``human``
    (:func:`human_scores` of the same images) the human benchmark and the percentage decrease from it."""
    iou = model_ious(per_image, labels, classes, threshold, tuned, miou_on)
    result: dict[str, Any] = {}
    for key, values in (("hit_rate", per_image["hit"]), ("miou", iou)):
        result[key] = _by_class(percentile_bootstrap, values, labels, classes, n_boot, seed)
    result.update(threshold=threshold, tuned_thresholds=tuned, miou_on=miou_on, probability_cutoff=cutoff,
                  tie_break=TIE_BREAK, upsampling="bilinear to the original image size", n_boot=n_boot)
    if human is None:
        result.update(human_benchmark=None, human_benchmark_note=NO_HUMAN_BENCHMARK)
    else:
        result["human_benchmark"] = human_benchmark({"hit_rate": per_image["hit"], "miou": iou}, human, labels, classes,
                                                    miou_on=miou_on, n_boot=n_boot, seed=seed, groups=groups)
    return result


def _by_class(stat, values: np.ndarray, labels: np.ndarray, classes: Sequence[str], *args, **kwargs) -> dict[str, Any]:
    """``stat`` over all images and over each class's images."""
    return {"overall": stat(values, *args, **kwargs),
            "per_class": {classes[int(c)]: stat(values[labels == c], *args, **kwargs) for c in np.unique(labels)}}


def human_scores(masks: Sequence[Any], readings: Sequence[Any]) -> dict[str, np.ndarray]:
    """Per image, the second reader (:class:`medrep.data.base.SecondReading`) against the ground-truth ``masks``
    (both at the original size): hit (NaN where the source has no points), IoU (0 where both are empty), and
    whether the reader drew anything."""
    n = len(masks)
    out = {"hit": np.full(n, np.nan), "iou": np.zeros(n), "predicted": np.zeros(n, dtype=bool)}
    for i, (mask, reading) in enumerate(zip(masks, readings)):
        truth = np.asarray(mask, dtype=bool)
        drawn = np.asarray(reading.mask, dtype=bool)
        inter, union = np.count_nonzero(truth & drawn), np.count_nonzero(truth | drawn)
        out["iou"][i] = inter / union if union else 0.0
        out["predicted"][i] = drawn.any()
        if reading.points is not None:
            out["hit"][i] = float(any(0 <= int(y) < truth.shape[0] and 0 <= int(x) < truth.shape[1] and truth[int(y), int(x)]
                                      for x, y in np.asarray(reading.points).reshape(-1, 2)))
    return out


def human_benchmark(model: dict[str, np.ndarray], human: dict[str, np.ndarray], labels: np.ndarray, classes: Sequence[str],
                    *, miou_on: str, n_boot: int, seed: int, groups: np.ndarray | None = None) -> dict[str, Any]:
    """The human benchmark's hit_rate and miou (per class and overall, as the model's) and the model's percentage
    decrease from each; ``model``: per-image hit and IoU (NaN where left out) on the same images."""
    human_iou = np.where(human["predicted"], human["iou"], np.nan) if miou_on == "true-positives" else human["iou"]
    has_points = not bool(np.isnan(human["hit"]).all())
    record: dict[str, Any] = {"hit_rate": None, "miou": _by_class(percentile_bootstrap, human_iou, labels, classes, n_boot, seed),
                              "percentage_decrease": {"hit_rate": None}}
    if has_points:
        record["hit_rate"] = _by_class(percentile_bootstrap, human["hit"], labels, classes, n_boot, seed)
        record["percentage_decrease"]["hit_rate"] = _paired(model["hit_rate"], human["hit"], labels, classes, n_boot, seed, groups)
    else:
        record["hit_rate_note"] = NO_HUMAN_POINTS
    record["percentage_decrease"]["miou"] = _paired(model["miou"], human_iou, labels, classes, n_boot, seed, groups)
    record.update(reader="a second reader's annotations of the same images (CheXlocalize: radiologists other than the "
                         "ground-truth readers)", hit_rule=HUMAN_HIT,
                  percentage_decrease_rule="(human − model) / human · 100; interval: paired bootstrap over "
                  + ("whole patients" if groups is not None else "images"))
    return record


def _paired(model: np.ndarray, human: np.ndarray, labels: np.ndarray, classes: Sequence[str], n_boot: int, seed: int,
            groups: np.ndarray | None) -> dict[str, Any]:
    overall = percentage_decrease(model, human, n_boot, seed, groups)
    per_class = {classes[int(c)]: percentage_decrease(model[labels == c], human[labels == c], n_boot, seed,
                                                      None if groups is None else groups[labels == c])
                 for c in np.unique(labels)}
    return {"overall": overall, "per_class": per_class}


def percentage_decrease(model: np.ndarray, human: np.ndarray, n_boot: int = 1000, seed: int = 0,
                        groups: np.ndarray | None = None) -> dict[str, Any]:
    """CheXlocalize's percentage decrease from the human benchmark, (human − model) / human · 100, each side the
    mean over its own non-NaN images, with a paired bootstrap interval: every replicate resamples the same images
    for both sides (whole groups, e.g. patients, when ``groups`` is given)."""
    m, h = np.asarray(model, dtype=np.float64), np.asarray(human, dtype=np.float64)
    codes = np.arange(m.size) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if not (~np.isnan(m)).any() or not (~np.isnan(h)).any() or np.nanmean(h) == 0:
        return {"value": None, "low": None, "high": None, "n": int(m.size)}
    sums = [np.bincount(codes, weights=np.nan_to_num(v), minlength=n_groups) for v in (h, m)]
    counts = [np.bincount(codes, weights=(~np.isnan(v)).astype(np.float64), minlength=n_groups) for v in (h, m)]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_groups, size=(n_boot, n_groups))
    weight = np.zeros((n_boot, n_groups))
    np.add.at(weight, (np.arange(n_boot)[:, None], idx), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        hb, mb = [(weight @ s) / (weight @ c) for s, c in zip(sums, counts)]
        boots = np.where(hb > 0, (hb - mb) / np.where(hb > 0, hb, 1) * 100, np.nan)
    low, high = percentile_bounds(boots, ignore_nan=True)
    hm, mm = float(np.nanmean(h)), float(np.nanmean(m))
    out = {"value": (hm - mm) / hm * 100, "low": low, "high": high, "n": int(m.size), "human": hm, "model": mm}
    if groups is not None:
        out["n_patients"] = n_groups
    return out
