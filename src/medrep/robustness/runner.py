"""``run_attack``: pair sources with targets, attack batch by batch, measure, aggregate with bootstraps.

Per-item arrays are the source of truth.  With ``out_dir`` every finished (batch, ε) unit is written to
``OUT/partial/`` atomically with checksums; ``resume=True`` verifies and reuses them.  Every random
draw of a unit comes from a generator seeded by (seed, batch, ε index), and the pairing from the seed
alone, so an interrupted-then-resumed run reproduces the uninterrupted one bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from medrep.data.base import ImageDataset, collate
from medrep.errors import MedrepError
from medrep.io import digest_json
from medrep.models.base import Encoder, evaluation
from medrep.partial import PartialStore
from medrep.progress import progress_bar
from medrep.results import RESULTS_SCHEMA_VERSION, Metric, bootstrap_metric
from medrep.robustness import metrics as M
from medrep.robustness.attacks import DEFAULT_RELATIVE_STEP, check_eps, make_attack
from medrep.robustness.classifiers import (Classifier, EmbeddingClassifier, HeadClassifier, fit_knn, fit_probe,
                                           resolve_classifiers)
from medrep.robustness.criteria import Misclassified, TargetMatched
from medrep.robustness.objectives import Objective, Representation, make_objective, representation_loss

BASE_COLUMNS = ("label", "target_label", "cosine_to_target_before", "cosine_to_target_after", "cosine_to_source_after",
                "relative_change", "psnr", "ssim", "linf", "l2", "final_loss", "steps_taken")
#: Noise levels of the label-consistency detector: the useful σ depends on the model (the paper gives none).
DEFAULT_NOISE_SIGMAS = (0.005, 0.01, 0.03)
TARGET_MODES = ("image", "centroid")


class AttackInterrupted(RuntimeError):
    """Raised by the ``stop_after_batches`` test hook to simulate a killed run."""


@dataclass
class EpsResult:
    eps: float
    step_size: float
    columns: list[str]
    values: np.ndarray  # (N, len(columns)) float64: the per-item source of truth
    loss_history: np.ndarray  # (N, steps + 1)
    gallery_adv: np.ndarray | None = None  # (G, C, H, W)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


@dataclass
class AttackResult:
    config: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    classifiers: list[str]
    source_ids: list[str]
    target_ids: list[str | None]
    per_eps: list[EpsResult]
    gallery_source: np.ndarray | None = None
    gallery_target: np.ndarray | None = None
    summaries: list[dict[str, Any]] = field(default_factory=list)
    subgroups: Any = None  # medrep.subgroups.result.SubgroupResult with --by

    @property
    def primary(self) -> str:
        return self.classifiers[0]

    def to_dict(self) -> dict[str, Any]:
        first = self.per_eps[0]
        labels = first.column("label").astype(int)
        targets = np.nan_to_num(first.column("target_label"), nan=-1).astype(int)  # NaN: no target (push)
        classes = self.data.get("classes") or []
        name = lambda k: classes[k] if 0 <= k < len(classes) else str(k)  # noqa: E731
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "kind": "attack",
            "model": self.model,
            "data": self.data,
            "config": self.config,
            "classifiers": self.classifiers,
            "primary_classifier": self.primary,
            "pairs": [{"source": s, "target": t, "source_label": name(int(a)), "target_label": name(int(b)) if t else None}
                      for s, t, a, b in zip(self.source_ids, self.target_ids, labels, targets)],
            "results": self.summaries,
            **({"subgroups": self.subgroups.to_dict()} if self.subgroups is not None else {}),
        }


@dataclass
class AttackJob:
    """Everything one attack batch needs besides the encoder and the data: what the backends run.

    A unit is ``(batch index, ε indices still to do)``; its result maps each ε index to the arrays of that
    (batch, ε) partial.  Every random draw comes from generators seeded by (seed, batch, ε slot), never
    by the worker, so a batch gives the same numbers wherever it runs.
    """

    obj: Objective
    rep: Representation
    names: list[str]
    fitted: dict[str, Any]
    centroids: dict[int, np.ndarray] | None
    labels: np.ndarray
    target_idx: np.ndarray
    target_labels: np.ndarray
    eps: list[float]
    norm: str
    steps: int
    step_size: float | None
    relative_step: float
    random_start: bool
    early_stop: bool
    seed: int
    sigmas: list[float]
    noise_draws: int
    batch_size: int
    gallery: int
    columns: list[str]

    def unit_size(self, unit: tuple[int, tuple[int, ...]]) -> int:
        b, todo = unit
        return (min(len(self.labels), (b + 1) * self.batch_size) - b * self.batch_size) * len(todo)

    def run(self, encoder: Encoder, dataset: ImageDataset, unit: tuple[int, tuple[int, ...]], progress: Any = None
            ) -> dict[int, dict[str, np.ndarray]]:
        b, todo = unit
        obj, rep, names, sigmas = self.obj, self.rep, self.names, self.sigmas
        n = len(self.labels)
        lo, hi = b * self.batch_size, min(n, (b + 1) * self.batch_size)
        clf: dict[str, Classifier] = {
            nm: HeadClassifier(encoder) if nm == "head" else EmbeddingClassifier(encoder, rep, self.fitted[nm])
            for nm in names}
        primary = clf[names[0]]
        device = encoder.device
        out_units: dict[int, dict[str, np.ndarray]] = {}
        with evaluation(encoder):
            # at the model's input size: mixed-size data batches, and ε is measured on the pixels the model sees
            fit = encoder.preprocessing.fit_kwargs()
            batch = collate([dataset[i] for i in range(lo, hi)], **fit)
            x = batch["image"].to(device)
            y = self.labels[lo:hi]
            ty = self.target_labels[lo:hi]
            with torch.no_grad():
                z = rep(encoder, x)
                if obj.uses_target:
                    if self.centroids is not None:
                        # not cast down to a float16 model's dtype: the objective works in float32 anyway
                        zt = torch.as_tensor(np.stack([self.centroids[int(t)] for t in ty]),
                                             dtype=torch.promote_types(z.dtype, torch.float32), device=device)
                        xt = None
                    else:
                        xt = collate([dataset[int(j)] for j in self.target_idx[lo:hi]], **fit)["image"].to(device)
                        zt = rep(encoder, xt)
                else:
                    zt, xt = None, None
                clean_preds = {nm: c.predict(x, z if nm != "head" else None) for nm, c in clf.items()}
                gen0 = _generator(self.seed, b, 0)
                det_clean = [M.noise_inconsistency(primary.predict, x, sg, self.noise_draws, gen0,
                                                   base=clean_preds[names[0]]) for sg in sigmas]
            reference = obj.reference(z, zt)
            loss_fn = representation_loss(encoder, rep, obj, reference)
            stop = None
            if self.early_stop:
                stop = TargetMatched(primary, ty) if obj.uses_target else Misclassified(primary, y)
            for e in todo:
                eps_v = self.eps[e]
                gen = _generator(self.seed, b, e + 1)
                attack = make_attack(self.norm, steps=self.steps, step_size=self.step_size,
                                     relative_step=self.relative_step, random_start=self.random_start, early_stop=stop)
                out = attack.run(loss_fn, x, eps_v, gen, final_loss=False)
                xa = out.x_adv
                with torch.no_grad():
                    za = rep(encoder, xa)
                    final = obj.loss(za, reference).float()
                    # the attack left the rows after its last step to us: f(x′) is computed here anyway
                    hist = out.loss_history
                    out.loss_history = torch.where(torch.isnan(hist), final.unsqueeze(0), hist)
                    adv_preds = {nm: c.predict(xa, za if nm != "head" else None) for nm, c in clf.items()}
                    det_adv = [M.noise_inconsistency(primary.predict, xa, sg, self.noise_draws, gen,
                                                     base=adv_preds[names[0]]) for sg in sigmas]
                psnr, ssim = M.image_quality(x, xa)
                linf, l2 = M.perturbation_norms(x, xa)
                nan = np.full(hi - lo, np.nan)
                cols = {
                    # push has no target: its drawn pair is never used, so no label is reported for it
                    "label": y, "target_label": ty if obj.uses_target else nan,
                    "cosine_to_target_before": M.cosine(z, zt) if zt is not None else nan,
                    "cosine_to_target_after": M.cosine(za, zt) if zt is not None else nan,
                    "cosine_to_source_after": M.cosine(za, z),
                    "relative_change": M.relative_change(za, z),
                    "psnr": psnr, "ssim": ssim, "linf": linf, "l2": l2,
                    "final_loss": out.loss_history[-1].cpu().numpy(), "steps_taken": out.steps_taken.cpu().numpy(),
                }
                for k in range(len(sigmas)):
                    cols[f"detector_clean_sigma{k}"] = det_clean[k]
                    cols[f"detector_attacked_sigma{k}"] = det_adv[k]
                for nm in names:
                    cols[f"{nm}_clean_pred"] = clean_preds[nm]
                    cols[f"{nm}_attacked_pred"] = adv_preds[nm]
                arrays = {"values": np.stack([np.asarray(cols[c], dtype=np.float64) for c in self.columns], axis=1),
                          "loss": out.loss_history.T.cpu().numpy().astype(np.float64)}
                if lo < self.gallery:  # gallery pictures come from the first items
                    k = min(self.gallery, hi) - lo
                    arrays["gallery_adv"] = xa[:k].cpu().numpy().astype(np.float32)
                    arrays["gallery_source"] = x[:k].cpu().numpy().astype(np.float32)
                    if xt is not None:
                        arrays["gallery_target"] = xt[:k].cpu().numpy().astype(np.float32)
                out_units[e] = arrays
                if progress is not None:
                    progress.advance(hi - lo)
        return out_units


def run_attack(
    encoder: Encoder,
    dataset: ImageDataset,
    train_dataset: ImageDataset | None = None,
    objective: str | Objective = "collide",
    eps: Sequence[float] | float = (4 / 255,),
    norm: str = "linf",
    steps: int = 50,
    step_size: float | None = None,
    relative_step: float = DEFAULT_RELATIVE_STEP,
    random_start: bool | None = None,
    target: str = "image",
    layer: str | None = None,
    pool: str | None = None,
    representation_fn: Callable[[Encoder, torch.Tensor], torch.Tensor] | None = None,
    classifiers: Sequence[str] | str | None = "auto",
    batch_size: int = 32,
    seed: int = 0,
    noise_sigma: float | Sequence[float] = DEFAULT_NOISE_SIGMAS,
    noise_draws: int = 8,
    early_stop: bool = False,
    gallery_size: int = 6,
    n_boot: int = 1000,
    out_dir: str | Path | None = None,
    resume: bool = False,
    cache=None,
    stop_after_batches: int | None = None,
    backend: Any = None,
) -> AttackResult:
    """Attack every item of ``dataset`` (normally the test split) at each ε and measure the damage.

    ``step_size`` defaults to ``relative_step·ε/steps`` (2.5·ε/steps, Madry et al.).  ``random_start``
    defaults to the objective's preference (off for collide, on for push, whose gradient vanishes at δ=0).
    Probe / kNN classifiers are fitted on ``train_dataset``'s clean representations.  ``backend`` (default:
    the current one, see :mod:`medrep.backends`) runs the batches; with Ray they are sharded over workers,
    and every finished (batch, ε) unit is written to ``OUT/partial/`` here as it arrives, so resuming works
    the same whichever backend ran the interrupted run.
    """
    from medrep.backends import resolve_backend

    backend = resolve_backend(backend)
    # -- validate everything before any work ----------------------------------------------------------
    eps_list = [check_eps(float(e)) for e in ([eps] if isinstance(eps, (int, float)) else list(eps))]
    if not eps_list:
        raise MedrepError("give at least one ε", where="--eps")
    obj = make_objective(objective)
    random_start = obj.wants_random_start if random_start is None else bool(random_start)
    geometry = make_attack(norm, steps=steps, step_size=step_size)  # validates norm / steps / step size
    check_eps_budget(eps_list, geometry.norm)
    if target not in TARGET_MODES:
        raise MedrepError(f"unknown target mode {target!r} (choose from {', '.join(TARGET_MODES)})", where="--attack-target")
    if batch_size < 1:
        raise MedrepError("must be at least 1", where="--batch-size")
    names = resolve_classifiers(classifiers, encoder)
    sigmas = check_detector(noise_sigma, noise_draws)
    needs_train = any(n in ("probe", "knn") for n in names) or (obj.uses_target and target == "centroid")
    if needs_train and train_dataset is None:
        raise MedrepError("probe / kNN classifiers and centroid targets need a training split", where="train_dataset")
    n = len(dataset)
    if n == 0:
        raise MedrepError("dataset has no items", where=getattr(dataset, "name", "--data"))
    if geometry.norm == "l2":
        # the attacked pixels: the data's channels at the model's input size (see AttackJob.run)
        check_eps_budget(eps_list, geometry.norm, (int(dataset[0].image.shape[0]), *encoder.preprocessing.size))
    labels = np.asarray(dataset.labels, dtype=np.int64)
    rep = Representation(layer, pool, representation_fn)
    ids = dataset.ids

    # -- pairing: the seed alone decides, so it never depends on batching or resumption --------------
    target_idx, target_labels = draw_pairs(labels, seed, obj.uses_target,
                                           n_classes=len(dataset.classes), where=getattr(dataset, "name", "--data"))
    centroids = None
    fitted: dict[str, Any] = {}
    if needs_train:
        train_z, train_y = _train_representations(encoder, rep, train_dataset, batch_size, cache, backend)
        if "probe" in names:
            fitted["probe"] = fit_probe(train_z, train_y, seed)
        if "knn" in names:
            fitted["knn"] = fit_knn(train_z, train_y)
        if obj.uses_target and target == "centroid":
            centroids = {int(c): train_z[train_y == c].mean(0) for c in np.unique(train_y)}
            missing = sorted(set(target_labels.tolist()) - set(centroids))
            if missing:
                raise MedrepError(f"training split has no items of class(es) {missing} for centroid targets",
                                  where="train_dataset")
    if not obj.uses_target:
        target_ids = [None] * n
    elif target == "centroid":
        target_ids = [f"centroid:{dataset.classes[t] if t < len(dataset.classes) else t}" for t in target_labels]
    else:
        target_ids = [ids[j] for j in target_idx]
    columns = (list(BASE_COLUMNS) + [f"{c}_{w}" for c in names for w in ("clean_pred", "attacked_pred")]
               + [f"detector_{w}_sigma{k}" for k in range(len(sigmas)) for w in ("clean", "attacked")])

    config = {
        "objective": obj.name, "eps": eps_list, "norm": str(norm).lower(), "steps": int(steps),
        "step_size": step_size, "step_size_rule": None if step_size is not None else f"{relative_step}*eps/steps",
        "random_start": random_start, "target": target if obj.uses_target else None,
        "representation": rep.describe(), "classifiers": names, "batch_size": int(batch_size), "seed": int(seed),
        "noise_sigma": sigmas, "noise_draws": int(noise_draws), "early_stop": bool(early_stop),
        "n_boot": int(n_boot), "psnr_cap_db": M.PSNR_CAP_DB,
    }
    model = {"name": encoder.name, "fingerprint": encoder.fingerprint, "has_head": encoder.has_head}
    data = {"name": getattr(dataset, "name", "dataset"), "n": n, "classes": list(dataset.classes),
            "digest": dataset.content_digest()}
    store = PartialStore(out_dir, digest_json({"config": config, "model": model, "data": data,
                                               "train": train_dataset.content_digest() if needs_train else None}),
                         resume)

    n_batches = -(-n // batch_size)
    g = min(gallery_size, n)
    units: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    job = AttackJob(obj=obj, rep=rep, names=names, fitted=fitted, centroids=centroids, labels=labels,
                    target_idx=target_idx, target_labels=target_labels, eps=eps_list, norm=norm, steps=steps,
                    step_size=step_size, relative_step=relative_step, random_start=random_start, early_stop=early_stop,
                    seed=seed, sigmas=sigmas, noise_draws=noise_draws, batch_size=batch_size, gallery=g, columns=columns)
    todo = []
    with evaluation(encoder), progress_bar(f"{obj.name} attack on {encoder.name}", n * len(eps_list)) as bar:
        for b in range(n_batches):
            missing = []
            for e in range(len(eps_list)):
                got = store.load(_unit_name(b, e))
                if got is None:
                    missing.append(e)
                else:
                    units[(b, e)] = got[0]
                    bar.advance(min(n, (b + 1) * batch_size) - b * batch_size)
            if missing:
                todo.append((b, tuple(missing)))
        for (b, _), arrays_by_eps in backend.map(job, encoder, dataset, todo, progress=bar):
            for e, arrays in arrays_by_eps.items():
                store.save(_unit_name(b, e), arrays)  # the caller writes every partial, whichever worker computed it
                units[(b, e)] = arrays
            if stop_after_batches is not None and b + 1 >= stop_after_batches and b + 1 < n_batches:
                raise AttackInterrupted(f"stopped after {b + 1} batch(es) as asked")

    per_eps = []
    for e, eps_v in enumerate(eps_list):
        parts = [units[(b, e)] for b in range(n_batches)]
        gal = [p["gallery_adv"] for p in parts if "gallery_adv" in p]
        per_eps.append(EpsResult(
            eps=eps_v, step_size=step_size if step_size is not None else relative_step * eps_v / steps, columns=columns,
            values=np.concatenate([p["values"] for p in parts]), loss_history=np.concatenate([p["loss"] for p in parts]),
            gallery_adv=np.concatenate(gal) if gal else None))
    first = [units[(b, 0)] for b in range(n_batches)]
    gs = [p["gallery_source"] for p in first if "gallery_source" in p]
    gt = [p["gallery_target"] for p in first if "gallery_target" in p]
    result = AttackResult(config, model, data, names, list(ids), target_ids, per_eps,
                          np.concatenate(gs) if gs else None, np.concatenate(gt) if gt else None)
    result.summaries = [summarise(r, names, obj.uses_target, seed, n_boot, sigmas, noise_draws) for r in per_eps]
    return result


def check_detector(noise_sigma: float | Sequence[float], noise_draws: int) -> list[float]:
    """The noise σ values as a list; each option's error names that option."""
    sigmas = [float(noise_sigma)] if isinstance(noise_sigma, (int, float)) else [float(v) for v in noise_sigma]
    if not sigmas or any(not v > 0 for v in sigmas):
        raise MedrepError(f"needs one or more positive σ values (got {sigmas})", where="--noise-sigma")
    if not noise_draws >= 1:
        raise MedrepError(f"must be at least 1 (got {noise_draws})", where="--noise-draws")
    return sigmas


def check_eps_budget(eps: Sequence[float], norm: str, shape: Sequence[int] | None = None) -> None:
    """ε within what the norm allows on [0, 1] pixels: an L∞ ε bounds each pixel's change (at most the whole
    range, 1); an L2 ε bounds the length of the whole change, at most √(C·H·W) (checked once ``shape`` is known)."""
    if not eps:
        return
    if norm == "linf" and max(eps) > 1:
        raise MedrepError(f"ε is in [0, 1] pixel units (got {max(eps)}); write 8/255 as 0.0314", where="--eps")
    if norm == "l2" and shape is not None:
        bound = math.sqrt(math.prod(int(v) for v in shape))
        if max(eps) > bound:
            raise MedrepError(f"an L2 ε cannot exceed √(C·H·W) = {bound:.4g}, the largest distance between two "
                              f"{'×'.join(str(int(v)) for v in shape)} images in [0, 1] (got {max(eps)})", where="--eps")


def draw_pairs(labels: np.ndarray, seed: int, need_other_class: bool, n_classes: int, where: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """For each source, a seeded item of a different class: (target indices, target labels)."""
    present = np.unique(labels)
    if need_other_class and len(present) < 2:
        raise MedrepError(f"collide needs at least two classes, but every item is of class {int(present[0])}; "
                          "targets must come from a different class", where=where)
    rng = np.random.default_rng(seed)
    idx = np.empty(len(labels), dtype=np.int64)
    by_class = {int(c): np.flatnonzero(labels != c) for c in present}
    for i, lab in enumerate(labels):
        others = by_class[int(lab)]
        idx[i] = others[rng.integers(len(others))] if len(others) else i
    return idx, labels[idx]


def summarise(r: EpsResult, names: list[str], uses_target: bool, seed: int, n_boot: int,
              sigmas: Sequence[float], draws: int) -> dict[str, Any]:
    """Aggregate one ε from its per-item columns (bootstrap 95% intervals, seeded)."""
    boot = lambda v: bootstrap_metric(v, n_boot=n_boot, seed=seed).to_dict()  # noqa: E731
    null = Metric(float("nan"), None, None, 0).to_dict()
    y, ty = r.column("label"), r.column("target_label")
    per_clf = {}
    for nm in names:
        clean, adv = r.column(f"{nm}_clean_pred"), r.column(f"{nm}_attacked_pred")
        per_clf[nm] = {
            "clean_accuracy": boot(clean == y),
            "attacked_accuracy": boot(adv == y),
            "accuracy_drop": boot((clean == y).astype(float) - (adv == y)),
            "match_success_rate": boot(adv == ty) if uses_target else null,
            "flip_rate": boot(adv != clean),
        }
    main = per_clf[names[0]]
    metrics = {
        **main,
        "cosine_to_target_before": boot(r.column("cosine_to_target_before")) if uses_target else null,
        "cosine_to_target_after": boot(r.column("cosine_to_target_after")) if uses_target else null,
        "cosine_to_source_after": boot(r.column("cosine_to_source_after")),
        "relative_change": boot(r.column("relative_change")),
        "psnr_mean": boot(r.column("psnr")),
        "ssim_mean": boot(r.column("ssim")),
        "linf_mean": boot(r.column("linf")),
        "l2_mean": boot(r.column("l2")),
        "steps_taken_mean": boot(r.column("steps_taken")),
    }
    detector = []
    for k, sg in enumerate(sigmas):
        dc, da = r.column(f"detector_clean_sigma{k}"), r.column(f"detector_attacked_sigma{k}")
        auc = M.detector_auc_bootstrap(dc, da, n_boot=n_boot, seed=seed)
        detector.append({"sigma": sg, "roc_auc": auc.to_dict(), "score_clean_mean": float(dc.mean()),
                         "score_attacked_mean": float(da.mean())})
    return {
        "eps": r.eps,
        "eps_255": round(r.eps * 255, 4),
        "step_size": r.step_size,
        "classifier": names[0],
        "metrics": metrics,
        "classifiers": per_clf,
        "loss_per_step": [float(v) for v in r.loss_history.mean(0)],
        "detector": {"method": "gaussian-noise label consistency: score = share of noisy copies whose label changes",
                     "classifier": names[0], "draws": draws, "by_sigma": detector},
    }


def _generator(seed: int, batch: int, slot: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, batch, slot]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def _train_representations(encoder: Encoder, rep: Representation, train: ImageDataset, batch_size: int, cache,
                           backend: Any = None) -> tuple[np.ndarray, np.ndarray]:
    if rep.fn is None:
        from medrep.features.extract import extract_embeddings

        emb = extract_embeddings(encoder, train, layer=rep.layer, pool=rep.pool, batch_size=max(batch_size, 64),
                                 cache=cache, description="clean training representations",
                                 backend=backend).check_finite()
        return emb.vectors.reshape(len(emb), -1), np.asarray(emb.labels)
    out = []  # a user callable cannot be keyed in the content cache: embed directly
    with progress_bar("clean training representations", len(train)) as bar, torch.no_grad():
        for lo in range(0, len(train), batch_size):
            batch = collate([train[i] for i in range(lo, min(len(train), lo + batch_size))],
                            **encoder.preprocessing.fit_kwargs())
            out.append(rep(encoder, batch["image"].to(encoder.device)).float().cpu().numpy())
            bar.advance(len(batch["id"]))
    return np.concatenate(out), np.asarray(train.labels)


def _unit_name(b: int, e: int) -> str:
    """The OUT/partial/ name of the (batch, ε) unit."""
    return f"b{b:05d}_e{e:02d}"
