"""Explain a dataset with several methods and score every map against the lesion masks (on data without masks:
every map, with faithfulness and sanity checks only, localisation reported as not run).

``run_explain(encoder, dataset, ExplainConfig(...), *, cache, backend, out_dir, resume)`` →
:class:`~medrep.explain.result.ExplainResult`; :func:`~medrep.explain.outputs.write_explain_outputs` writes
its files.  Batches (and the sanity checks' batches) run under the backend and are kept in ``OUT/partial/``
for ``resume``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from medrep.backends.units import run_units
from medrep.data.base import ImageDataset, collate
from medrep.errors import MedrepError, Param
from medrep.explain import chexlocalize, chung2025
from medrep.explain.config import (DEFAULT_METHODS, METRICS, TARGETS, ExplainConfig,  # noqa: F401
                                   check_config, check_method_options, supported_methods)
from medrep.explain.faithfulness import deletion_auc, insertion_auc, pixel_ranks
from medrep.explain.methods import normalize_maps, raw_maps, token_offset, upsample
from medrep.explain.outputs import plot_gallery, write_explain_outputs  # noqa: F401
from medrep.explain.registry import baseline_methods
from medrep.explain.result import ExplainResult, higher_is_better, metric_keys  # noqa: F401
from medrep.explain.road import road_curves
from medrep.explain.sanity import SanityJob, randomisation_units, summarise_sanity
from medrep.explain.scores import auprc, dead_maps, iou_topk, mask_area, pointing_game, relevance_mass
from medrep.explain.targets import Target, resolve_classes, score_from_output, model_output
from medrep.explain.verdict import verdicts
from medrep.io import digest_bytes, digest_json
from medrep.models.base import Encoder, evaluation
from medrep.partial import PartialStore
from medrep.progress import progress_bar
from medrep.intervals import CLUSTER_INTERVAL, bootstrap_metric

# bumped when what a batch stores or how it is scored changes, so partial results of older code are not resumed
SCORING_VERSION = 5


#: the scores that compare a map with a lesion mask; data without masks runs everything else
MASK_METRICS = ("pointing", "iou", "mass", "auprc")
NO_MASKS = "not run (the data has no masks)"


def _masked_indices(dataset: ImageDataset) -> tuple[list[int], int]:
    if not dataset.has_masks:  # nothing to localise against: every image is explained
        return list(range(len(dataset))), 0
    keep, empty = [], 0
    for i in range(len(dataset)):
        if dataset.has_lesion(i):
            keep.append(i)
        else:
            empty += 1
    if not keep:
        raise MedrepError(f"no image of dataset {dataset.name} has a non-empty mask", where=Param("data"))
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


def default_target(encoder: Encoder, data_classes: Sequence[str] | None = None) -> str:
    """What an explanation explains when the user does not say: the class logit when the model has a head
    that can score the classes (its outputs are ``data_classes``, see ``Encoder.head_fit``), else the cosine
    to the class's reference embedding."""
    if not encoder.has_head:
        return "embedding"
    return "class" if data_classes is None or encoder.head_fit(data_classes).fits else "embedding"


def text_references(encoder: Encoder, classes: Sequence[str], template: str = "{label}") -> torch.Tensor:
    """(K, D) text embeddings of ``template`` with each class name as ``{label}``, from the encoder's own text tower."""
    from medrep.vocabulary import format_prompt

    tower = getattr(encoder, "text_encoder", None)
    if tower is None:
        raise MedrepError(f"model {encoder.name} has no text tower; use --explain-target embedding without --prompt", where=Param("prompt"))
    prompts = [format_prompt(template, c, where=Param("prompt")) for c in classes]
    with torch.no_grad():
        return torch.as_tensor(tower.encode_text(prompts)).float()


def _batch_target(kind: str, encoder: Encoder, pixels: torch.Tensor, labels: torch.Tensor,
                  references: torch.Tensor | None) -> Target:
    if kind == "embedding":
        refs = references.to(encoder.device)
        return Target("embedding", references=refs[labels.to(encoder.device)])
    if kind == "class":
        return Target("class", classes=labels.to(encoder.device))
    return resolve_classes(encoder, pixels, Target("class"))  # the predicted class, fixed for every method


@dataclass
class ExplainJob:
    """One explanation batch per unit (its index): maps of every method, scored.  What the backends run.

    The random baseline's seed depends on the batch index only, so a batch gives the same maps wherever
    it runs; the gallery takes the first ``gallery_size`` scored images, whichever batches hold them.
    """

    indices: list[int]
    config: ExplainConfig
    methods: list[str]
    references: torch.Tensor | None
    gallery: bool = True

    def unit_size(self, bi: int) -> int:
        return len(self.methods)

    def run(self, encoder: Encoder, dataset: ImageDataset, bi: int, progress: Any = None) -> dict[str, Any]:
        cfg = self.config
        start = bi * cfg.batch_size
        items = [dataset[i] for i in self.indices[start:start + cfg.batch_size]]
        with evaluation(encoder):
            # maps and masks at the model's input size, so mixed-size data batches
            batch = collate(items, **encoder.preprocessing.fit_kwargs())
            pixels = batch["image"].to(encoder.device, encoder.dtype)
            masks = None if batch["mask"] is None else batch["mask"].to(encoder.device)
            if masks is not None and tuple(masks.shape[-2:]) != tuple(pixels.shape[-2:]):
                raise MedrepError(f"mask {tuple(masks.shape[-2:])} and image {tuple(pixels.shape[-2:])} sizes differ",
                                  where=batch["id"][0])
            tgt = _batch_target(cfg.target, encoder, pixels, batch["label"], self.references)
            take = max(0, min(len(batch["id"]), cfg.gallery_size - start)) if self.gallery else 0
            areas = np.full(len(items), np.nan) if masks is None else mask_area(masks).cpu().numpy()
            out: dict[str, Any] = {"ids": list(batch["id"]), "areas": areas,
                                   "labels": batch["label"].numpy(), "scores": {}, "dead": {}, "seconds": {},
                                   "protocol": {}, "curves": {}, "gallery": None, "human": _human_scores(cfg, items)}
            if take:
                shown = (np.zeros((take, *pixels.shape[-2:]), dtype=bool) if masks is None
                         else batch["mask"][:take].numpy())  # no mask: no outline
                out["gallery"] = {"images": batch["image"][:take].numpy(), "masks": shown,
                                  "ids": list(batch["id"][:take]), "maps": {}}
            probabilities = self._probabilities(encoder, pixels, tgt)
            for method in self.methods:
                opts = dict(cfg.method_options.get(method, {}))
                if method == "random":
                    opts.setdefault("seed", cfg.seed * 100_003 + bi)  # a fresh draw per batch, reproducible
                t0 = time.perf_counter()
                raw = raw_maps(encoder, pixels, method, tgt, **opts)
                # maps: min-max normalised (pointing, IoU, deletion order); upsampled: the method's own values (mass)
                upsampled = upsample(raw, tuple(pixels.shape[-2:]), cfg.upsampling, token_offset(encoder, raw))
                maps = normalize_maps(upsampled)
                out["seconds"][method] = time.perf_counter() - t0
                out["dead"][method] = dead_maps(maps).cpu().numpy()
                out["scores"][method], out["curves"][method] = _score(encoder, pixels, maps, masks, tgt, cfg, upsampled)
                out["protocol"][method] = _protocol_scores(cfg, method, raw, items, pixels, masks, probabilities)
                if take:
                    out["gallery"]["maps"][method] = maps[:take].cpu().numpy()
                if progress is not None:
                    progress.advance(1)
        return out

    def _probabilities(self, encoder: Encoder, pixels: torch.Tensor, target: Target) -> torch.Tensor | None:
        """The target class's softmax probability per image, for the CheXlocalize probability cut-off."""
        if self.config.probability_cutoff is None or target.kind != "class":
            return None
        with torch.no_grad():
            return score_from_output(model_output(encoder, pixels, target), target, probability=True).float().cpu()


def _human_scores(cfg: ExplainConfig, items: Sequence[Any]) -> dict[str, np.ndarray] | None:
    """The second reader's per-image CheXlocalize scores (None without the protocol or a second reader)."""
    if cfg.protocol != "chexlocalize" or not items or any(it.second_reader is None for it in items):
        return None
    return chexlocalize.human_scores([it.mask for it in items], [it.second_reader for it in items])


def _protocol_scores(cfg: ExplainConfig, method: str, raw: torch.Tensor, items: Sequence[Any], pixels: torch.Tensor,
                     masks: torch.Tensor, probabilities: torch.Tensor | None) -> dict[str, np.ndarray]:
    """Per-image scores of the named protocol (none without one)."""
    if cfg.protocol == "chexlocalize":
        originals = [torch.as_tensor(it.mask) for it in items]  # the ORIGINAL image size, not the model's
        return chexlocalize.score_original_size(raw.cpu(), originals, probabilities, cfg.probability_cutoff,
                                                tuning_grid=cfg.threshold == "tuned")
    if cfg.protocol == "chung2025":
        maps = chung2025.protocol_maps(raw, method, tuple(pixels.shape[-2:]))
        return {k: v.cpu().numpy() for k, v in chung2025.chung_scores(maps, masks, tuple(cfg.topk)).items()}
    return {}


def _score(encoder: Encoder, pixels: torch.Tensor, maps: torch.Tensor, masks: torch.Tensor, target: Target,
           cfg: ExplainConfig, raw: torch.Tensor | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-image scores of ``maps`` (normalised), and the ROAD curves; mass is taken on ``raw`` (the upsampled maps
    before min-max, clamped at 0 by relevance_mass) when given: normalising subtracts the minimum, which moves
    the ratio."""
    out: dict[str, torch.Tensor] = {}
    curves: dict[str, np.ndarray] = {}
    perturb = {"steps": cfg.steps, "baseline": cfg.perturbation_baseline, "batch_size": cfg.batch_size * 4}
    for m in cfg.metrics:
        if m == "pointing":
            out["pointing"] = pointing_game(maps, masks)
        elif m == "iou":
            ranks = pixel_ranks(maps.flatten(1).float())  # one sort serves every k and both modes
            for mode in ("box", "pixel"):
                for k in cfg.topk:
                    out[f"iou_{mode}@{k:g}"] = iou_topk(maps, masks, k, mode, ranks)
        elif m == "mass":
            out["mass"] = relevance_mass(raw if raw is not None else maps, masks)
        elif m == "auprc":
            out["auprc"] = auprc(maps, masks)
        elif m == "deletion":
            out["deletion_auc"] = deletion_auc(encoder, pixels, maps, target, **perturb)
        elif m == "insertion":
            out["insertion_auc"] = insertion_auc(encoder, pixels, maps, target, **perturb)
        elif m == "road":
            road = road_curves(encoder, pixels, maps, target, cfg.road_percents, seed=cfg.seed, batch_size=cfg.batch_size * 4)
            out["road_morf"], out["road_lerf"] = road["morf"].mean(1), road["lerf"].mean(1)
            curves = {k: v.numpy() for k, v in road.items()}
    order = metric_keys(cfg.metrics, cfg.topk)
    return {k: out[k].detach().float().cpu().numpy() for k in order}, curves


def _patients_of(dataset: ImageDataset, ids: Sequence[str]) -> np.ndarray | None:
    """Patient id of each scored item (None when the source has no patient ids)."""
    patients = dataset.patients
    if patients is None:
        return None
    by_id = dict(zip(dataset.ids, patients.tolist()))
    return np.array([by_id[i] for i in ids], dtype=object)


def _select_indices(dataset: ImageDataset, limit: int | None, seed: int) -> tuple[list[int], int]:
    indices, n_empty = _masked_indices(dataset)
    if limit is not None and limit < len(indices):
        rng = np.random.default_rng(seed)
        indices = sorted(rng.choice(indices, size=limit, replace=False).tolist())
    return indices, n_empty


def _run_units(job: Any, encoder: Encoder, dataset: ImageDataset, n_units: int, store: PartialStore, prefix: str,
               backend: Any, description: str) -> list[dict[str, Any]]:
    """Every unit of ``job`` in unit order: resumed ones from ``store``, the rest run by ``backend`` and saved."""
    def load(u: int) -> dict[str, Any] | None:
        got = store.load(f"{prefix}{u:05d}")
        return _unflatten(*got) if got is not None else None

    with evaluation(encoder), progress_bar(description, sum(job.unit_size(u) for u in range(n_units))) as bar:
        outs = run_units(job, encoder, dataset, range(n_units), backend, load=load, progress=bar, size=job.unit_size,
                         save=lambda u, out: store.save(f"{prefix}{u:05d}", *_flatten(out)))
    return [outs[u] for u in range(n_units)]


def _flatten(tree: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A batch's nested output as named arrays (path joined by '::') plus the rest as a JSON record."""
    arrays: dict[str, np.ndarray] = {}
    extra: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            extra[path + "::{}"] = list(node)
            for k, v in node.items():
                walk(v, f"{path}::{k}" if path else k)
        elif isinstance(node, np.ndarray):
            arrays[path] = node
        else:
            extra[path] = node

    walk(tree, "")
    return arrays, extra


def _unflatten(arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> dict[str, Any]:
    def build(path: str) -> Any:
        if path in arrays:
            return arrays[path]
        if path + "::{}" in extra:
            return {k: build(f"{path}::{k}" if path else k) for k in extra[path + "::{}"]}
        return extra.get(path)

    return build("")


def run_explain(encoder: Encoder, dataset: ImageDataset, config: ExplainConfig | None = None, *,
                references: torch.Tensor | None = None, tune_dataset: ImageDataset | None = None, cache: Any = None,
                backend: Any = None, out_dir: str | Path | None = None, resume: bool = False,
                **settings: Any) -> ExplainResult:
    """Maps of every method for the images with a non-empty mask, scored against the masks.

    ``config`` (:class:`ExplainConfig`) says what is computed; keyword ``settings`` build one instead (the
    older call form, ``run_explain(enc, data, methods=[...], steps=4)``).  ``target``: ``class`` (the item's
    label), ``predicted`` (the model's top class) or ``embedding`` (cosine similarity to ``references`` (K, D)
    indexed by label, default the class centroids of ``dataset``).  ``tune_dataset``: the split a tuned
    CheXlocalize threshold is chosen on.  ``backend`` (default: the current one) runs the batches (Ray: sharded
    over workers); results are gathered in batch order, so they do not depend on who ran what.  With
    ``out_dir`` every finished batch is kept in ``OUT/partial/``; ``resume=True`` reuses them, and the result
    equals an uninterrupted run's.  A method that cannot explain this model (see :func:`supported_methods`) is
    refused before any work, or left out with ``skip_unsupported`` (the default method list does that;
    ``result.settings["skipped_methods"]`` says which and why).  A ``class`` target is refused when the model's
    head was trained on other classes than the data's (see ``Encoder.head_fit``).
    """
    from medrep.backends import resolve_backend

    if config is not None and settings:
        raise MedrepError(f"pass a config or settings, not both (got {', '.join(sorted(settings))})", where="run_explain")
    cfg = config if config is not None else ExplainConfig.from_settings(**settings)
    backend = resolve_backend(backend)
    supported, skipped = supported_methods(encoder, cfg.methods, cfg.skip_unsupported)
    if skipped:
        cfg = dataclasses.replace(cfg, methods=tuple(supported))
    check_config(cfg, encoder)
    cfg, not_run = _without_mask_scores(cfg, dataset)
    fit = encoder.head_fit(dataset.classes)
    if cfg.target == "class" and not fit.fits:  # the item's label would index an output that means another class
        raise MedrepError(f"the head of {encoder.name} does not fit the data: {fit.reason}; use --explain-target embedding "
                          "(or name the head's outputs with --head-classes)", where=Param("explain_target"))
    if cfg.threshold == "tuned" and tune_dataset is None:
        raise MedrepError("a tuned threshold needs the tuning split's images", where=Param("tune_split"))
    methods = cfg.all_methods
    indices, n_empty = _select_indices(dataset, cfg.limit, cfg.seed)
    if cfg.target == "embedding" and references is None:
        references = class_centroids(encoder, dataset, batch_size=max(cfg.batch_size, 32), cache=cache, backend=backend)
    refs = references.detach().float().cpu() if references is not None else None
    store = PartialStore(out_dir, digest_json({
        "model": encoder.fingerprint, "data": dataset.content_digest(), "indices": indices, "methods": methods,
        "config": cfg.to_dict(), "scoring": SCORING_VERSION,
        "tune": None if tune_dataset is None else tune_dataset.content_digest(),
        "references": None if refs is None else digest_bytes(refs.numpy().tobytes()),
    }), resume)
    job = ExplainJob(indices=indices, config=cfg, methods=methods, references=refs)
    n_batches = (len(indices) + cfg.batch_size - 1) // cfg.batch_size
    outs = _run_units(job, encoder, dataset, n_batches, store, "b", backend, f"explain {encoder.name}")
    result = _gather(outs, encoder, dataset, cfg, methods, n_empty)
    result.settings["skipped_methods"] = skipped
    if not_run is not None:
        result.localisation = not_run
    if cfg.protocol is not None:
        tuned = _tuned_thresholds(encoder, tune_dataset, cfg, methods, refs, store, backend) if cfg.threshold == "tuned" else {}
        groups = _patients_of(dataset, result.ids)
        result.protocol = {cfg.protocol: _protocol_summary(outs, result.labels, list(dataset.classes), cfg, methods, tuned,
                                                           groups)}
    if cfg.sanity:
        result.sanity = _run_sanity(encoder, dataset, cfg, methods, indices, refs, store, backend)
    result.verdicts = verdicts(methods, result.metrics, tuple(baseline_methods()), result.sanity,
                               localisation_note=None if not_run is None else not_run["reason"])
    return result


def _some_masks(dataset: Any) -> bool:
    """Whether some items of file-backed data name a mask (read from the index, no file opened)."""
    parts = getattr(dataset, "parts", None)
    if parts:
        return any(_some_masks(p) for p in parts.values())
    if hasattr(dataset, "parent") and hasattr(dataset, "indices"):
        entries = getattr(dataset.parent, "entries", None)
        return entries is not None and any(entries[i].mask is not None for i in dataset.indices)
    return any(e.mask is not None for e in getattr(dataset, "entries", ()))


def _without_mask_scores(cfg: ExplainConfig, dataset: ImageDataset) -> tuple[ExplainConfig, dict[str, Any] | None]:
    """On data without lesion masks: the config less the mask scores, and the record of what was not run and why
    (None when the data has masks).  A named protocol is all localisation, so it is refused instead."""
    if dataset.has_masks:
        return cfg, None
    if _some_masks(dataset):
        raise MedrepError(f"only some images of dataset {dataset.name} have a mask (a blank mask cell is no annotation, "
                          "not an empty mask); give every image one, an empty mask where there is no lesion, or none to "
                          "explain without localisation", where=Param("data"))
    if cfg.protocol is not None:
        raise MedrepError(f"the {cfg.protocol} protocol scores maps against lesion masks and dataset {dataset.name} has "
                          "none; leave out --protocol to run the faithfulness and sanity checks", where=Param("protocol"))
    dropped = [m for m in cfg.metrics if m in MASK_METRICS]
    kept = tuple(m for m in cfg.metrics if m not in MASK_METRICS)
    return dataclasses.replace(cfg, metrics=kept), {"run": False, "reason": NO_MASKS, "metrics": dropped}


def _gather(outs: list[dict[str, Any]], encoder: Encoder, dataset: ImageDataset, cfg: ExplainConfig,
            methods: list[str], n_empty: int) -> ExplainResult:
    """The batches' outputs, in batch order, summarised: means with 95% intervals, mask areas, the gallery."""
    keys = metric_keys(cfg.metrics, cfg.topk)
    cat = np.concatenate
    ids = [i for o in outs for i in o["ids"]]
    values = {m: {k: cat([o["scores"][m][k] for o in outs]) for k in keys} for m in methods}
    # pointing: one 0/1 hit per image, a proportion (Wilson); every other score is a mean of continuous values,
    # bootstrapped even where all happen to be 0 or 1: the table's legend says which interval is which.
    # With patient ids, the images of one patient are resampled together (a cluster bootstrap) instead.
    groups = _patients_of(dataset, ids)
    summary = {m: {k: bootstrap_metric(v, n_boot=cfg.n_boot, seed=cfg.seed, proportion=None if k == "pointing" else False,
                                       groups=groups)
                   for k, v in ks.items()} for m, ks in values.items()}
    area, lab = cat([o["areas"] for o in outs]), cat([o["labels"] for o in outs])
    n = len(ids)
    area_stats: dict[str, Any] | None = None if not dataset.has_masks else {
        "mean": float(area.mean()), "median": float(np.median(area)), "min": float(area.min()),
        "max": float(area.max()), "std": float(area.std()), "n": n, "n_without_mask": n_empty,
        "mean_by_class": {dataset.classes[c]: float(area[lab == c].mean()) for c in np.unique(lab)},
    }
    gal_outs = [o["gallery"] for o in outs if o["gallery"] is not None]
    gal = {"ids": [i for g in gal_outs for i in g["ids"]],
           "images": cat([g["images"] for g in gal_outs]) if gal_outs else np.zeros((0,)),
           "masks": cat([g["masks"] for g in gal_outs]) if gal_outs else np.zeros((0,)),
           "maps": {m: cat([g["maps"][m] for g in gal_outs]) for m in methods} if gal_outs else {}}
    road = {}
    if "road" in cfg.metrics:
        for m in methods:
            curves = {k: cat([o["curves"][m][k] for o in outs]) for k in ("morf", "lerf")}
            road[m] = {"percentages": list(cfg.road_percents), **{k: v.mean(0).tolist() for k, v in curves.items()},
                       "morf_mean": summary[m]["road_morf"].to_dict(), "lerf_mean": summary[m]["road_lerf"].to_dict(),
                       "imputation": "noisy linear (neighbours 1/6 direct, 1/12 diagonal), noise σ 0.01",
                       "score": "target-class probability" if cfg.target != "embedding" else "cosine similarity"}
    settings = {"upsampling": cfg.upsampling, "topk_percent": list(cfg.topk), "perturbation_steps": cfg.steps,
                "perturbation_baseline": cfg.perturbation_baseline, "batch_size": cfg.batch_size, "seed": cfg.seed,
                "limit": cfg.limit, "method_options": cfg.method_options, "protocol": cfg.protocol,
                "road_percents": list(cfg.road_percents), "sanity": list(cfg.sanity),
                "bootstrap": {"n_boot": cfg.n_boot, "confidence": 0.95}}
    data_desc = {"name": dataset.name, "n_scored": n, "n_without_mask": n_empty if dataset.has_masks else None,
                 "masks": dataset.has_masks, "classes": list(dataset.classes)}
    if groups is not None:
        data_desc.update(n_images=n, n_patients=len(set(groups.tolist())), interval=CLUSTER_INTERVAL)
    return ExplainResult(
        model=encoder.name, data=data_desc,
        target=cfg.target, methods=methods, metric_names=keys, metrics=summary, per_image=values, ids=ids,
        mask_area=area_stats, settings=settings,
        seconds_per_image={m: sum(o["seconds"][m] for o in outs) / max(n, 1) for m in methods}, gallery=gal,
        dead={m: cat([o["dead"][m] for o in outs]).astype(bool) for m in methods}, labels=lab, road=road)


def _protocol_summary(outs: list[dict[str, Any]], labels: np.ndarray, classes: list[str], cfg: ExplainConfig,
                      methods: list[str], tuned: dict[str, dict[str, float]], groups: np.ndarray | None) -> dict[str, Any]:
    per = {m: {k: np.concatenate([o["protocol"][m][k] for o in outs]) for k in outs[0]["protocol"][m]} for m in methods}
    if cfg.protocol == "chexlocalize":
        # the human benchmark only where every scored image has a second reader: never a partial one
        human = None if any(o.get("human") is None for o in outs) else \
            {k: np.concatenate([o["human"][k] for o in outs]) for k in outs[0]["human"]}
        return {m: chexlocalize.summarise(per[m], labels, classes, threshold=cfg.threshold, tuned=tuned.get(m),
                                          miou_on=cfg.miou_on, cutoff=cfg.probability_cutoff, n_boot=cfg.n_boot,
                                          seed=cfg.seed, human=human, groups=groups) for m in methods}
    return {m: {k: bootstrap_metric(v, n_boot=cfg.n_boot, seed=cfg.seed).to_dict() for k, v in per[m].items()}
            | {"conventions": "Chung et al. 2025 (ugent-korea/attention_maps src/func_eval.py)"} for m in methods}


def _tuned_thresholds(encoder: Encoder, tune_dataset: ImageDataset, cfg: ExplainConfig, methods: list[str],
                      refs: torch.Tensor | None, store: PartialStore, backend: Any) -> dict[str, dict[str, float]]:
    """Per method and class, the threshold that maximises mIoU on the tuning split's masked images."""
    tune_cfg = dataclasses.replace(cfg, metrics=(), limit=None, sanity=())
    indices, _ = _select_indices(tune_dataset, None, cfg.seed)
    job = ExplainJob(indices=indices, config=tune_cfg, methods=methods, references=refs, gallery=False)
    n_batches = (len(indices) + cfg.batch_size - 1) // cfg.batch_size
    outs = _run_units(job, encoder, tune_dataset, n_batches, store, "t", backend, f"tune thresholds {encoder.name}")
    labels = np.concatenate([o["labels"] for o in outs])
    return {m: chexlocalize.tune_thresholds(np.concatenate([o["protocol"][m]["iou_grid"] for o in outs]), labels,
                                            list(tune_dataset.classes)) for m in methods}


def _run_sanity(encoder: Encoder, dataset: ImageDataset, cfg: ExplainConfig, methods: list[str], indices: list[int],
                refs: torch.Tensor | None, store: PartialStore, backend: Any) -> dict[str, Any]:
    """The sanity checks on the first ``sanity_images`` scored images, for every method but the baselines."""
    tested = [m for m in methods if m not in baseline_methods()]
    units = randomisation_units(encoder) if {"cascading", "independent"} & set(cfg.sanity) else []
    chosen = indices[:cfg.sanity_images]
    job = SanityJob(indices=chosen, methods=tested, tests=list(cfg.sanity), target=cfg.target, references=refs,
                    method_options={m: dict(o) for m, o in cfg.method_options.items()}, upsampling=cfg.upsampling,
                    batch_size=cfg.batch_size, seed=cfg.seed, topk=cfg.sanity_topk, n_steps=len(units))
    n_batches = (len(chosen) + cfg.batch_size - 1) // cfg.batch_size
    outs = _run_units(job, encoder, dataset, n_batches, store, "s", backend, f"sanity {encoder.name}")
    summary = summarise_sanity(outs, tested, cfg.sanity, [u.name for u in units], cfg.sanity_threshold, cfg.n_boot, cfg.seed)
    summary["n_images"] = len(chosen)
    if "logit" in cfg.sanity and cfg.target == "embedding":
        summary["logit_note"] = "not run: an embedding target has no other class to explain"
    return summary
