"""Explain a dataset with several methods and score every map against the lesion masks.

``run_explain`` → :class:`ExplainResult` (``to_dict()`` is what ``results.json`` holds; the audit report
reads the same object); ``write_explain_outputs`` writes results.json, a method × metric CSV and a gallery.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from medrep.data.base import ImageDataset, collate
from medrep.errors import MedrepError
from medrep.explain.attention import find_attention_sites, fuse_heads, select_sites
from medrep.explain.faithfulness import BASELINES as PERTURBATION_BASELINES
from medrep.explain.faithfulness import deletion_auc, insertion_auc, pixel_ranks
from medrep.explain.methods import (UPSAMPLING, attention_methods, baseline_methods, default_gradcam_layer, default_methods,
                                    explain_with_raw, get_method, ig_coefficients, rollout_matrices)
from medrep.explain.scores import TOPK_PERCENTS, dead_maps, iou_topk, mask_area, pointing_game, relevance_mass
from medrep.explain.targets import Target, resolve_classes
from medrep.io import digest_bytes, digest_json
from medrep.models.base import Encoder, evaluation
from medrep.partial import PartialStore
from medrep.progress import progress_bar
from medrep.results import RESULTS_SCHEMA_VERSION, Metric, bootstrap_metric, metric_rows

METRICS = ("pointing", "iou", "mass", "deletion", "insertion")
DEFAULT_METHODS = default_methods()  # the built-ins; the registry's ``default`` metadata is the source
TARGETS = ("class", "predicted", "embedding")
# bumped when what a batch stores or how it is scored changes, so partial results of older code are not resumed
SCORING_VERSION = 3
# which direction is better, for readers of the table
HIGHER_IS_BETTER = {"pointing": True, "iou": True, "mass": True, "deletion": False, "insertion": True}


def higher_is_better(key: str) -> bool:
    """Direction of a metric key: 'iou_box@10' → iou, 'deletion_auc' → deletion."""
    return HIGHER_IS_BETTER[key.split("@")[0].split("_")[0]]


def _fmt_metric(m: Metric) -> str:
    if m.low is None or m.high is None or np.isnan(m.value):
        return f"{m.value:.3f}"
    return f"{m.value:.3f} [{m.low:.3f}, {m.high:.3f}]"


def metric_keys(metrics: Sequence[str], topk: Sequence[float] = TOPK_PERCENTS) -> list[str]:
    keys: list[str] = []
    for m in metrics:
        if m == "iou":
            keys += [f"iou_box@{k:g}" for k in topk] + [f"iou_pixel@{k:g}" for k in topk]
        elif m in ("deletion", "insertion"):
            keys.append(f"{m}_auc")
        else:
            keys.append(m)
    return keys


@dataclass
class ExplainResult:
    model: str
    data: dict[str, Any]
    target: str
    methods: list[str]
    metric_names: list[str]
    metrics: dict[str, dict[str, Metric]]            # method → metric key → mean with 95% interval
    per_image: dict[str, dict[str, np.ndarray]]      # method → metric key → (n,) values
    ids: list[str]
    mask_area: dict[str, float]
    settings: dict[str, Any]
    seconds_per_image: dict[str, float] = field(default_factory=dict)  # wall-clock: the manifest's, not results.json's
    gallery: dict[str, Any] = field(default_factory=dict)  # images (G,C,H,W), masks (G,H,W), maps {method: (G,H,W)}
    dead: dict[str, np.ndarray] = field(default_factory=dict)  # method → (n,) bool: the map was constant
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (n,) class index per id
    subgroups: Any = None  # medrep.subgroups.result.SubgroupResult with --by

    @property
    def dead_maps(self) -> dict[str, int]:
        """method → how many of its maps were constant (they point nowhere and score 0 on pointing and IoU)."""
        return {m: int(np.count_nonzero(self.dead[m])) if m in self.dead else 0 for m in self.methods}

    def table(self) -> list[dict[str, Any]]:
        """Rows (method, metric, value, low, high, n) — the CSV and the report's table."""
        return metric_rows("method", {method: self.metrics[method] for method in self.methods})

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "kind": "explain",
            "model": self.model,
            "data": self.data,
            "target": self.target,
            "methods": self.methods,
            "baselines": [m for m in self.methods if m in baseline_methods()],
            "metric_names": self.metric_names,
            "higher_is_better": {k: higher_is_better(k) for k in self.metric_names},
            "metrics": {meth: {k: m.to_dict() for k, m in ms.items()} for meth, ms in self.metrics.items()},
            "mask_area": self.mask_area,
            "dead_maps": self.dead_maps,
            "n_images": len(self.ids),
            "ids": self.ids,
            "settings": self.settings,
            **({"subgroups": self.subgroups.to_dict()} if self.subgroups is not None else {}),
        }

    def format_table(self, ascii_only: bool = False) -> str:
        """Plain-text method × metric table (mean [95% CI]); each header says which direction is better
        (↑ higher, ↓ lower; ``ascii_only``: ^ and v), explained in a legend line under the table."""
        up, down = ("^", "v") if ascii_only else ("↑", "↓")
        keys = self.metric_names
        head = ["method"] + [f"{k} {up if higher_is_better(k) else down}" for k in keys]
        lines = [head]
        for method in self.methods:
            lines.append([method] + [_fmt_metric(self.metrics[method][k]) for k in keys])
        widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
        table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)
        n_boot = self.settings.get("bootstrap", {}).get("n_boot")
        boot = f", {n_boot} resamples" if n_boot else ""
        return (f"{table}\nmean [95% bootstrap CI over images{boot}]; {up} higher is better, {down} lower is better "
                f"(deletion_auc: the score should fall fast as the top pixels go)")


def _as_flag(flag: str, check: Any, *args: Any) -> None:
    """Run ``check``; its MedrepError is re-raised naming ``flag``, the CLI option the value came from."""
    try:
        check(*args)
    except MedrepError as err:
        message = str(err)
        if err.where and message.startswith(f"{err.where}: "):
            message = message[len(err.where) + 2:]
        raise MedrepError(message, where=flag) from None


def check_method_options(encoder: Encoder, methods: Sequence[str], method_options: dict[str, dict[str, Any]]) -> None:
    """Refuse bad method options before any work, naming the CLI flag (an error from inside the first batch
    would come after the earlier methods ran, and name the function's argument or another command's flag)."""
    for method, opts in method_options.items():
        if method not in methods:
            continue
        accepted = set(inspect.signature(get_method(method)).parameters) - {"encoder", "pixels", "target"}
        unknown = sorted(set(opts) - accepted)
        if unknown:
            raise MedrepError(f"method {method!r} has no option {', '.join(unknown)} (it takes {', '.join(sorted(accepted))})",
                              where="--methods")
        if "block" in opts:
            _as_flag("--block", select_sites, find_attention_sites(encoder), [int(opts["block"])], encoder.name)
        if "head_fusion" in opts:
            _as_flag("--head-fusion", fuse_heads, torch.zeros(1, 1, 1, 1), opts["head_fusion"])
        if "discard_ratio" in opts:
            _as_flag("--discard-ratio", rollout_matrices, [torch.ones(1, 1, 1, 1)], "mean", float(opts["discard_ratio"]))
        if method == "gradcam":
            layer = opts.get("layer")
            if layer:
                _as_flag("--gradcam-layer", encoder.get_submodule_checked, layer)
            else:
                _as_flag("--gradcam-layer", default_gradcam_layer, encoder)
        if method == "ig" and "steps" in opts:
            _as_flag("--ig-steps", ig_coefficients, int(opts["steps"]), opts.get("rule", "gausslegendre"))


def _masked_indices(dataset: ImageDataset) -> tuple[list[int], int]:
    if not dataset.has_masks:
        raise MedrepError(f"dataset {dataset.name} has no lesion masks; explanation scores need them", where="--data")
    keep, empty = [], 0
    for i in range(len(dataset)):
        if dataset.has_lesion(i):
            keep.append(i)
        else:
            empty += 1
    if not keep:
        raise MedrepError(f"no image of dataset {dataset.name} has a non-empty mask", where="--data")
    return keep, empty


def class_centroids(encoder: Encoder, dataset: ImageDataset, batch_size: int = 64, cache: Any = None,
                    backend: Any = None) -> torch.Tensor:
    """(K, D) mean embedding of each class of ``dataset`` (served from the embedding cache)."""
    from medrep.features.extract import extract_embeddings

    emb = extract_embeddings(encoder, dataset, batch_size=batch_size, cache=cache, description="class centroids",
                             backend=backend)
    vecs, labels = torch.as_tensor(emb.vectors, dtype=torch.float32), torch.as_tensor(emb.labels)
    k = len(dataset.classes)
    cents = torch.zeros(k, vecs.shape[1])
    for c in range(k):
        sel = labels == c
        if sel.any():
            cents[c] = vecs[sel].mean(0)
    return cents


def default_target(encoder: Encoder) -> str:
    """What an explanation explains when the user does not say: the class logit when the model has a head
    that can score the classes, else the cosine to the class's reference embedding."""
    return "class" if encoder.has_head else "embedding"


def text_references(encoder: Encoder, classes: Sequence[str], template: str = "{label}") -> torch.Tensor:
    """(K, D) text embeddings of ``template`` with each class name as ``{label}``, from the encoder's own text tower."""
    from medrep.vocabulary import format_prompt

    tower = getattr(encoder, "text_encoder", None)
    if tower is None:
        raise MedrepError(f"model {encoder.name} has no text tower; use --explain-target embedding without --prompt", where="--prompt")
    prompts = [format_prompt(template, c, where="--prompt") for c in classes]
    with torch.no_grad():
        return torch.as_tensor(tower.encode_text(prompts)).float()


@dataclass
class ExplainJob:
    """One explanation batch per unit (its index): maps of every method, scored.  What the backends run.

    The random baseline's seed depends on the batch index only, so a batch gives the same maps wherever
    it runs; the gallery takes the first ``gallery_size`` scored images, whichever batches hold them.
    """

    indices: list[int]
    methods: list[str]
    metrics: list[str]
    target: str
    references: torch.Tensor | None
    method_options: dict[str, dict[str, Any]]
    upsampling: str
    topk: list[float]
    steps: int
    perturbation_baseline: str
    batch_size: int
    seed: int
    gallery_size: int

    def unit_size(self, bi: int) -> int:
        return len(self.methods)

    def run(self, encoder: Encoder, dataset: ImageDataset, bi: int, progress: Any = None) -> dict[str, Any]:
        start = bi * self.batch_size
        with evaluation(encoder):
            # maps and masks at the model's input size, so mixed-size data batches
            batch = collate([dataset[i] for i in self.indices[start:start + self.batch_size]],
                            **encoder.preprocessing.fit_kwargs())
            pixels = batch["image"].to(encoder.device, encoder.dtype)
            masks = batch["mask"].to(encoder.device)
            if tuple(masks.shape[-2:]) != tuple(pixels.shape[-2:]):
                raise MedrepError(f"mask {tuple(masks.shape[-2:])} and image {tuple(pixels.shape[-2:])} sizes differ",
                                  where=batch["id"][0])
            if self.target == "embedding":
                refs = self.references.to(encoder.device)
                tgt = Target("embedding", references=refs[batch["label"].to(encoder.device)])
            elif self.target == "class":
                tgt = Target("class", classes=batch["label"].to(encoder.device))
            else:  # the predicted class, fixed once so every method explains the same one
                tgt = resolve_classes(encoder, pixels, Target("class"))
            take = max(0, min(len(batch["id"]), self.gallery_size - start))
            out: dict[str, Any] = {"ids": list(batch["id"]), "areas": mask_area(masks).cpu().numpy(),
                                   "labels": batch["label"].numpy(), "scores": {}, "dead": {}, "seconds": {},
                                   "gallery": None}
            if take:
                out["gallery"] = {"images": batch["image"][:take].numpy(), "masks": batch["mask"][:take].numpy(),
                                  "ids": list(batch["id"][:take]), "maps": {}}
            for method in self.methods:
                opts = dict(self.method_options.get(method, {}))
                if method == "random":
                    opts.setdefault("seed", self.seed * 100_003 + bi)  # a fresh draw per batch, reproducible
                t0 = time.perf_counter()
                # maps: min-max normalised (pointing, IoU, deletion order); upsampled: the method's own values (mass)
                upsampled, maps = explain_with_raw(encoder, pixels, method, tgt, upsampling=self.upsampling, **opts)
                out["seconds"][method] = time.perf_counter() - t0
                out["dead"][method] = dead_maps(maps).cpu().numpy()
                out["scores"][method] = _score(encoder, pixels, maps, masks, tgt, self.metrics, self.topk, self.steps,
                                               self.perturbation_baseline, self.batch_size, raw=upsampled)
                if take:
                    out["gallery"]["maps"][method] = maps[:take].cpu().numpy()
                if progress is not None:
                    progress.advance(1)
        return out


def run_explain(
    encoder: Encoder,
    dataset: ImageDataset,
    methods: Sequence[str] | None = None,
    metrics: Sequence[str] = METRICS,
    target: str = "class",
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    upsampling: str = "bilinear",
    topk: Sequence[float] = TOPK_PERCENTS,
    steps: int = 16,
    perturbation_baseline: str = "blur",
    references: torch.Tensor | None = None,
    method_options: dict[str, dict[str, Any]] | None = None,
    add_baselines: bool = True,
    gallery_size: int = 6,
    n_boot: int = 1000,
    cache: Any = None,
    backend: Any = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
) -> ExplainResult:
    """Maps of every method for the images with a non-empty mask, scored against the masks.

    ``target``: ``class`` (the item's label), ``predicted`` (the model's top class) or ``embedding``
    (cosine similarity to ``references`` (K, D) indexed by label, default the class centroids of
    ``dataset``).  The random and centre baselines are always added unless ``add_baselines=False``.
    ``backend`` (default: the current one, see :mod:`medrep.backends`) runs the batches (Ray: sharded
    over workers); the results are gathered in batch order, so they do not depend on who ran what.
    With ``out_dir`` every finished batch is kept in ``OUT/partial/``; ``resume=True`` reuses them, and
    the result equals an uninterrupted run's.
    """
    from medrep.backends import resolve_backend

    backend = resolve_backend(backend)
    methods = list(dict.fromkeys(default_methods() if methods is None else methods))
    for m in methods:
        get_method(m)
    if add_baselines:
        methods += [b for b in baseline_methods() if b not in methods]
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise MedrepError(f"unknown metric(s) {', '.join(bad)} (choose from {', '.join(METRICS)})", where="--metrics")
    if target not in TARGETS:
        raise MedrepError(f"unknown target {target!r} (choose from {', '.join(TARGETS)})", where="--explain-target")
    if upsampling not in UPSAMPLING:
        raise MedrepError(f"unknown upsampling {upsampling!r} (choose from {', '.join(UPSAMPLING)})", where="--upsample")
    if perturbation_baseline not in PERTURBATION_BASELINES:
        raise MedrepError(f"unknown baseline {perturbation_baseline!r} (choose {', '.join(PERTURBATION_BASELINES)})", where="--deletion-baseline")
    if batch_size < 1:
        raise MedrepError("must be at least 1", where="--batch-size")
    if target in ("class", "predicted") and not encoder.has_head:
        raise MedrepError(f"model {encoder.name} has no classification head; use --explain-target embedding", where="--explain-target")
    method_options = dict(method_options or {})
    if any(m in attention_methods() for m in methods):
        find_attention_sites(encoder)  # fail before any work when the model has no attention to read
    check_method_options(encoder, methods, method_options)
    if any(m in ("deletion", "insertion") for m in metrics) and steps < 1:
        raise MedrepError("needs at least one step", where="--deletion-steps")
    for k in topk:
        if not 0 < k <= 100:
            raise MedrepError(f"top-k percentage must be in (0, 100], got {k:g}", where="--topk")

    indices, n_empty = _masked_indices(dataset)
    if limit is not None and limit < len(indices):
        if limit <= 0:
            raise MedrepError("must be a positive number", where="--limit")
        rng = np.random.default_rng(seed)
        indices = sorted(rng.choice(indices, size=limit, replace=False).tolist())
    if target == "embedding" and references is None:
        references = class_centroids(encoder, dataset, batch_size=max(batch_size, 32), cache=cache, backend=backend)

    keys = metric_keys(metrics, topk)
    job = ExplainJob(indices=indices, methods=methods, metrics=list(metrics), target=target,
                     references=references.detach().float().cpu() if references is not None else None,
                     method_options=method_options, upsampling=upsampling, topk=list(topk), steps=steps,
                     perturbation_baseline=perturbation_baseline, batch_size=batch_size, seed=seed,
                     gallery_size=gallery_size)
    n_batches = (len(indices) + batch_size - 1) // batch_size
    store = PartialStore(out_dir, digest_json({
        "model": encoder.fingerprint, "data": dataset.content_digest(), "indices": indices, "methods": methods,
        "metrics": list(metrics), "target": target, "topk": list(topk), "steps": steps, "upsampling": upsampling,
        "baseline": perturbation_baseline, "batch_size": batch_size, "seed": seed, "gallery_size": gallery_size,
        "method_options": method_options, "scoring": SCORING_VERSION,
        "references": None if references is None else digest_bytes(references.detach().float().cpu().numpy().tobytes()),
    }), resume)
    outs: dict[int, dict[str, Any]] = {}
    with evaluation(encoder), progress_bar(f"explain {encoder.name}", n_batches * len(methods)) as bar:
        for bi in range(n_batches):
            got = store.load(f"b{bi:05d}")
            if got is not None:
                outs[bi] = _unpack_batch(*got, methods)
                bar.advance(len(methods))
        todo = [bi for bi in range(n_batches) if bi not in outs]
        for bi, out in backend.map(job, encoder, dataset, todo, progress=bar):
            store.save(f"b{bi:05d}", *_pack_batch(out))  # the caller writes every partial, whichever worker ran it
            outs[bi] = out
    per_image: dict[str, dict[str, list[np.ndarray]]] = {m: {k: [] for k in keys} for m in methods}
    dead: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    ids: list[str] = []
    areas: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    gallery: dict[str, Any] = {"maps": {m: [] for m in methods}, "images": [], "masks": [], "ids": []}
    for bi in range(n_batches):  # batch order, whatever order the backend finished them in
        out = outs.pop(bi)
        ids += out["ids"]
        areas.append(out["areas"])
        labels.append(out["labels"])
        for method in methods:
            seconds[method] += out["seconds"][method]
            dead[method].append(out["dead"][method])
            for k, v in out["scores"][method].items():
                per_image[method][k].append(v)
        if out["gallery"] is not None:
            gallery["images"].append(out["gallery"]["images"])
            gallery["masks"].append(out["gallery"]["masks"])
            gallery["ids"] += out["gallery"]["ids"]
            for method in methods:
                gallery["maps"][method].append(out["gallery"]["maps"][method])

    n = len(ids)
    values = {m: {k: np.concatenate(v) for k, v in ks.items()} for m, ks in per_image.items()}
    summary = {m: {k: bootstrap_metric(v, n_boot=n_boot, seed=seed) for k, v in ks.items()} for m, ks in values.items()}
    area = np.concatenate(areas)
    lab = np.concatenate(labels)
    area_stats: dict[str, Any] = {
        "mean": float(area.mean()), "median": float(np.median(area)), "min": float(area.min()),
        "max": float(area.max()), "std": float(area.std()), "n": n, "n_without_mask": n_empty,
        "mean_by_class": {dataset.classes[c]: float(area[lab == c].mean()) for c in np.unique(lab)},
    }
    gal = {
        "ids": gallery["ids"],
        "images": np.concatenate(gallery["images"]) if gallery["images"] else np.zeros((0,)),
        "masks": np.concatenate(gallery["masks"]) if gallery["masks"] else np.zeros((0,)),
        "maps": {m: np.concatenate(v) for m, v in gallery["maps"].items() if v},
    }
    data_desc = {"name": dataset.name, "n_scored": n, "n_without_mask": n_empty, "classes": list(dataset.classes)}
    settings = {"upsampling": upsampling, "topk_percent": list(topk), "perturbation_steps": steps,
                "perturbation_baseline": perturbation_baseline, "batch_size": batch_size, "seed": seed, "limit": limit,
                "method_options": method_options, "bootstrap": {"n_boot": n_boot, "confidence": 0.95}}
    return ExplainResult(
        model=encoder.name, data=data_desc, target=target, methods=methods, metric_names=keys, metrics=summary,
        per_image=values, ids=ids, mask_area=area_stats, settings=settings,
        seconds_per_image={m: s / max(n, 1) for m, s in seconds.items()}, gallery=gal,
        dead={m: np.concatenate(v).astype(bool) for m, v in dead.items()}, labels=lab)


def _pack_batch(out: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One batch's output as named arrays plus a small JSON record (for OUT/partial/)."""
    arrays = {"areas": out["areas"], "labels": out["labels"]}
    for method, scores in out["scores"].items():
        for key, v in scores.items():
            arrays[f"score__{method}__{key}"] = v
        arrays[f"dead__{method}"] = out["dead"][method]
    extra: dict[str, Any] = {"ids": out["ids"], "seconds": out["seconds"], "score_keys": {m: list(v) for m, v in out["scores"].items()},
                             "gallery_ids": None}
    if out["gallery"] is not None:
        g = out["gallery"]
        arrays["gallery_images"], arrays["gallery_masks"] = g["images"], g["masks"]
        for method, m in g["maps"].items():
            arrays[f"gallery_map__{method}"] = m
        extra["gallery_ids"] = g["ids"]
    return arrays, extra


def _unpack_batch(arrays: dict[str, np.ndarray], extra: dict[str, Any], methods: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"ids": extra["ids"], "seconds": extra["seconds"], "areas": arrays["areas"], "labels": arrays["labels"],
                           "scores": {m: {k: arrays[f"score__{m}__{k}"] for k in extra["score_keys"][m]} for m in methods},
                           "dead": {m: arrays[f"dead__{m}"] for m in methods}, "gallery": None}
    if extra["gallery_ids"] is not None:
        out["gallery"] = {"ids": extra["gallery_ids"], "images": arrays["gallery_images"], "masks": arrays["gallery_masks"],
                          "maps": {m: arrays[f"gallery_map__{m}"] for m in methods}}
    return out


def _score(encoder: Encoder, pixels: torch.Tensor, maps: torch.Tensor, masks: torch.Tensor, target: Target,
           metrics: Sequence[str], topk: Sequence[float], steps: int, baseline: str, batch_size: int,
           raw: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Per-image scores of ``maps`` (normalised); mass is taken on ``raw`` (the upsampled maps before min-max,
    clamped at 0 by relevance_mass) when given: normalising subtracts the minimum, which moves the ratio."""
    out: dict[str, torch.Tensor] = {}
    for m in metrics:
        if m == "pointing":
            out["pointing"] = pointing_game(maps, masks)
        elif m == "iou":
            ranks = pixel_ranks(maps.flatten(1).float())  # one sort serves every k and both modes
            for mode in ("box", "pixel"):
                for k in topk:
                    out[f"iou_{mode}@{k:g}"] = iou_topk(maps, masks, k, mode, ranks)
        elif m == "mass":
            out["mass"] = relevance_mass(raw if raw is not None else maps, masks)
        elif m == "deletion":
            out["deletion_auc"] = deletion_auc(encoder, pixels, maps, target, steps=steps, baseline=baseline,
                                               batch_size=batch_size * 4)
        elif m == "insertion":
            out["insertion_auc"] = insertion_auc(encoder, pixels, maps, target, steps=steps, baseline=baseline,
                                                 batch_size=batch_size * 4)
    order = metric_keys(metrics, topk)
    return {k: out[k].detach().float().cpu().numpy() for k in order}


# -- writing ----------------------------------------------------------------------------------------
def write_explain_outputs(result: ExplainResult, out_dir: str | Path) -> dict[str, Path]:
    """results.json, explain_table.csv (method × metric, mean and 95% interval), per_image_scores.csv (one row per
    image and method: id, label, method, every metric, dead_map), gallery.png."""
    from medrep.io import write_csv_atomic, write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": write_json_atomic(out / "results.json", result.to_dict())}

    table = []
    for meth in result.methods:
        row: list[Any] = [meth]
        for k in result.metric_names:
            m = result.metrics[meth][k]
            row += [_fmt(m.value), _fmt(m.low), _fmt(m.high)]
        table.append(row + [len(result.ids)])
    paths["table"] = write_csv_atomic(
        out / "explain_table.csv",
        ["method"] + [f"{k}{suffix}" for k in result.metric_names for suffix in ("", "_low", "_high")] + ["n"], table)

    classes = result.data.get("classes") or []
    per_image = []
    for i, image_id in enumerate(result.ids):
        c = int(result.labels[i])
        label = classes[c] if 0 <= c < len(classes) else c
        for meth in result.methods:
            dead = result.dead.get(meth)
            per_image.append([image_id, label, meth]
                             + [_fmt(float(result.per_image[meth][k][i])) for k in result.metric_names]
                             + ["" if dead is None else int(dead[i])])
    paths["per_image"] = write_csv_atomic(out / "per_image_scores.csv",
                                          ["id", "label", "method"] + list(result.metric_names) + ["dead_map"], per_image)
    if len(result.gallery.get("ids", [])):
        paths["gallery"] = plot_gallery(result, out / "gallery.png")
    return paths


def _fmt(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.6g}"


def plot_gallery(result: ExplainResult, path: str | Path) -> Path:
    """Rows: images; columns: the image with the mask outline, then each method's heatmap (outline on top)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medrep.io import atomic_write

    g = result.gallery
    images, masks, ids = g["images"], g["masks"], g["ids"]
    methods = [m for m in result.methods if m in g["maps"]]
    rows, cols = len(ids), 1 + len(methods)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.7 * rows + 0.3), squeeze=False)
    for r in range(rows):
        img = images[r]
        show = img[0] if img.shape[0] == 1 else np.transpose(img[:3], (1, 2, 0))
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(show, cmap="gray" if show.ndim == 2 else None, vmin=0, vmax=1)
            if c > 0:
                ax.imshow(g["maps"][methods[c - 1]][r], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if masks[r].any():
                ax.contour(masks[r].astype(float), levels=[0.5], colors="lime", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("image + mask" if c == 0 else methods[c - 1], fontsize=8)
        axes[r, 0].set_ylabel(str(ids[r])[-16:], fontsize=7)
    fig.suptitle(f"{result.model}: explanation maps (target: {result.target})", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return Path(path)
