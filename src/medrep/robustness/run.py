"""``run_attack``: pair sources with targets, attack batch by batch, measure, aggregate with bootstraps.

Per-item arrays are the source of truth.  With ``out_dir`` every finished (batch, ε) unit is written to
``OUT/partial/`` atomically with checksums; ``resume=True`` verifies and reuses them.  Every random
draw of a unit comes from a generator seeded by (seed, batch, ε index), and the pairing from the seed
alone, so an interrupted-then-resumed run reproduces the uninterrupted one bit for bit.

Several attacks (``attack=("apgd", "square")``) give, per item, the worst case over them (AutoAttack's rule):
the point of the first attack that broke the item (preferring one that met the objective's own criterion),
else the one with the lowest loss.  The points kept at a smaller ε are candidates at every larger ε (they lie
inside its ball), so the attacked accuracy never rises with ε; ``from_smaller_eps`` marks the items whose point
came from there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from medrep.backends.units import run_units
from medrep.data.base import ImageDataset, collate
from medrep.data.patients import bootstrap_groups
from medrep.errors import MedrepError, Param
from medrep.io import digest_json
from medrep.models.base import Encoder, evaluation
from medrep.partial import PartialStore
from medrep.progress import progress_bar
from medrep.intervals import CLUSTER_INTERVAL
from medrep.robustness import metrics as M
from medrep.robustness.attacks import AttackOutput, build_attack, check_eps, check_steps, make_ball
from medrep.robustness.classifiers import (Classifier, EmbeddingClassifier, HeadClassifier, fit_knn, fit_probe,
                                           resolve_classifiers)
from medrep.robustness.config import (DEFAULT_NOISE_SIGMAS, DTYPES, PROTOCOLS, TARGET_MODES, AttackConfig,
                                      protocol_description, with_protocol)
from medrep.robustness.criteria import make_criterion
from medrep.robustness.objectives import Objective, Representation, make_objective, representation_loss
from medrep.robustness.result import AttackResult, EpsResult, attack_columns, summarise

BASE_COLUMNS = ("label", "target_label", "cosine_to_target_before", "cosine_to_target_after", "cosine_to_source_after",
                "relative_change", "psnr", "ssim", "linf", "l2", "final_loss", "steps_taken", "from_smaller_eps")
__all__ = ["AttackInterrupted", "AttackJob", "BASE_COLUMNS", "DEFAULT_NOISE_SIGMAS", "TARGET_MODES", "check_detector",
           "check_eps_budget", "draw_pairs", "run_attack"]


class AttackInterrupted(RuntimeError):
    """Raised by the ``stop_after_batches`` test hook to simulate a killed run."""


@dataclass
class AttackJob:
    """Everything one attack batch needs besides the encoder and the data: what the backends run.

    A unit is ``(batch index, ε indices still to do)``; its result maps each ε index to the arrays of that
    (batch, ε) partial.  Every random draw comes from generators seeded by (seed, batch, ε slot), never
    by the worker, so a batch gives the same numbers wherever it runs.
    """

    config: AttackConfig
    obj: Objective
    rep: Representation
    names: list[str]
    fitted: dict[str, Any]
    centroids: dict[int, np.ndarray] | None
    labels: np.ndarray
    target_idx: np.ndarray
    target_labels: np.ndarray
    random_start: bool
    sigmas: list[float]
    gallery: int
    columns: list[str]

    def unit_size(self, unit: tuple[int, tuple[int, ...]]) -> int:
        b, todo = unit
        bs = self.config.batch_size
        return (min(len(self.labels), (b + 1) * bs) - b * bs) * len(todo)

    def run(self, encoder: Encoder, dataset: ImageDataset, unit: tuple[int, tuple[int, ...]], progress: Any = None
            ) -> dict[int, dict[str, np.ndarray]]:
        b, todo = unit
        out_units: dict[int, dict[str, np.ndarray]] = {}
        with evaluation(encoder):
            batch = _Batch.load(self, encoder, dataset, b)
            kept = None  # the points kept at the largest smaller ε: candidates at every larger one
            for e in sorted(todo, key=lambda k: self.config.eps[k]):
                out_units[e], kept = self.attack_eps(batch, e, kept)
                if progress is not None:
                    progress.advance(batch.hi - batch.lo)
        return out_units

    def attack_eps(self, batch: "_Batch", e: int, kept: dict[str, Any] | None = None
                   ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Every attack at ε index ``e`` on one batch; the worst case per item, over them and over ``kept`` (the
        points kept at a smaller ε, which lie inside this ball too: so accuracy never rises with ε); its
        measurements, and the points kept here."""
        cfg, encoder = self.config, batch.encoder
        eps = cfg.eps[e]
        gen = _generator(cfg.seed, batch.index, e + 1)  # the first attack's draws, then the detector's
        stop = (make_criterion(self.obj.criterion, batch.clf[self.names[0]], batch.y, batch.ty)
                if cfg.early_stop else None)
        runs = []
        for k, name in enumerate(cfg.attack):
            attack = build_attack(name, cfg.norm, cfg.steps, cfg.queries, stop, self.random_start, cfg.step_size,
                                  cfg.relative_step)
            g = gen if k == 0 else _generator(cfg.seed, batch.index, 1000 * k + e + 1)
            runs.append(batch.measure_attack(attack.run(batch.loss_fn, batch.x, eps, g, final_loss=False)))
        candidates = runs + ([kept] if kept is not None else [])
        chosen = _worst_case(candidates, batch.y, batch.ty, self.obj.uses_target)
        reference_run = None
        if cfg.dtype != "float32":  # the first attack once more in float32, for its accuracy beside the autocast one
            attack = build_attack(cfg.attack[0], cfg.norm, cfg.steps, cfg.queries, stop, self.random_start, cfg.step_size,
                                  cfg.relative_step)
            reference_run = batch.measure_attack(attack.run(batch.loss_fn_float32, batch.x, eps,
                                                            _generator(cfg.seed, batch.index, 2000 + e + 1), final_loss=False))
        pick = lambda key: _rows(candidates, chosen, key)  # noqa: E731
        xa, za, final = pick("x_adv"), pick("z"), pick("final")
        adv_preds = {nm: np.choose(chosen, [r["preds"][nm] for r in candidates]) for nm in self.names}
        taken = np.choose(chosen, [r["taken"] for r in candidates])
        with torch.no_grad():
            primary = batch.clf[self.names[0]]
            det_adv = [M.noise_inconsistency(primary.predict, xa, sg, cfg.noise_draws, gen, base=adv_preds[self.names[0]])
                       for sg in self.sigmas]
        out = runs[0]["output"]
        hist = torch.where(torch.isnan(out.loss_history), runs[0]["final"].unsqueeze(0), out.loss_history)
        cols = batch.columns(xa, za, final, taken, adv_preds, det_adv)
        cols["from_smaller_eps"] = (chosen == len(runs)).astype(np.float64)
        if reference_run is not None:
            cols["float32_attacked_pred"] = reference_run["preds"][self.names[0]]
        if len(runs) > 1:
            cols["attack_index"] = np.where(chosen == len(runs), -1, chosen)
            for name, r in zip(cfg.attack, runs):
                cols[f"attack_{name}_pred"] = r["preds"][self.names[0]]
                cols[f"attack_{name}_final_loss"] = r["final"].cpu().numpy()
                cols[f"attack_{name}_steps_taken"] = r["taken"]
        arrays = {"values": np.stack([np.asarray(cols[c], dtype=np.float64) for c in self.columns], axis=1),
                  "loss": hist.T.cpu().numpy().astype(np.float64),
                  "passes": np.array([[r["output"].passes.gradient, r["output"].passes.forward,
                                       r["output"].passes.gradient_calls] for r in runs], dtype=np.float64)}
        if batch.lo < self.gallery:  # gallery pictures come from the first items
            k = min(self.gallery, batch.hi) - batch.lo
            arrays["gallery_adv"] = xa[:k].cpu().numpy().astype(np.float32)
            arrays["gallery_source"] = batch.x[:k].cpu().numpy().astype(np.float32)
            if batch.xt is not None:
                arrays["gallery_target"] = batch.xt[:k].cpu().numpy().astype(np.float32)
        return arrays, {"x_adv": xa, "z": za, "final": final, "preds": adv_preds, "taken": taken}


class _Batch:
    """One batch's clean pixels, references, classifiers and clean measurements."""

    @classmethod
    def load(cls, job: AttackJob, encoder: Encoder, dataset: ImageDataset, b: int) -> "_Batch":
        self = cls()
        cfg = job.config
        self.job, self.encoder, self.index = job, encoder, b
        n = len(job.labels)
        self.lo, self.hi = b * cfg.batch_size, min(n, (b + 1) * cfg.batch_size)
        self.clf: dict[str, Classifier] = {
            nm: HeadClassifier(encoder) if nm == "head" else EmbeddingClassifier(encoder, job.rep, job.fitted[nm])
            for nm in job.names}
        device = encoder.device
        # at the model's input size: mixed-size data batches, and ε is measured on the pixels the model sees
        fit = encoder.preprocessing.fit_kwargs()
        self.x = collate([dataset[i] for i in range(self.lo, self.hi)], **fit)["image"].to(device)
        self.y, self.ty = job.labels[self.lo:self.hi], job.target_labels[self.lo:self.hi]
        with torch.no_grad():
            self.z = job.rep(encoder, self.x)
            self.zt, self.xt = None, None
            if job.obj.uses_target:
                if job.centroids is not None:
                    # not cast down to a float16 model's dtype: the objective works in float32 anyway
                    self.zt = torch.as_tensor(np.stack([job.centroids[int(t)] for t in self.ty]),
                                              dtype=torch.promote_types(self.z.dtype, torch.float32), device=device)
                else:
                    self.xt = collate([dataset[int(j)] for j in job.target_idx[self.lo:self.hi]], **fit)["image"].to(device)
                    self.zt = job.rep(encoder, self.xt)
            self.clean_preds = {nm: c.predict(self.x, self.z if nm != "head" else None) for nm, c in self.clf.items()}
            gen0 = _generator(cfg.seed, b, 0)
            self.det_clean = [M.noise_inconsistency(self.clf[job.names[0]].predict, self.x, sg, cfg.noise_draws, gen0,
                                                    base=self.clean_preds[job.names[0]]) for sg in job.sigmas]
        labels = torch.as_tensor(self.y, device=device)
        self.reference = job.obj.reference(self.z, self.zt, labels)
        self.loss_fn = representation_loss(encoder, job.rep, job.obj, self.reference, DTYPES[cfg.dtype])
        self.loss_fn_float32 = representation_loss(encoder, job.rep, job.obj, self.reference)
        return self

    def measure_attack(self, out: AttackOutput) -> dict[str, Any]:
        """An attack's point: its representation, its loss there, every classifier's label."""
        job = self.job
        with torch.no_grad():
            za = job.rep(self.encoder, out.x_adv)
            feats = za if not job.obj.needs_head else job.obj.features(self.encoder, job.rep, out.x_adv)
            final = job.obj.loss(feats, self.reference).float()
            preds = {nm: c.predict(out.x_adv, za if nm != "head" else None) for nm, c in self.clf.items()}
        return {"output": out, "x_adv": out.x_adv, "z": za, "final": final, "preds": preds,
                "taken": out.steps_taken.cpu().numpy()}

    def columns(self, xa, za, final, taken, adv_preds, det_adv) -> dict[str, Any]:
        job = self.job
        psnr, ssim = M.image_quality(self.x, xa)
        linf, l2 = M.perturbation_norms(self.x, xa)
        nan = np.full(self.hi - self.lo, np.nan)
        zt = self.zt
        cols = {
            # push has no target: its drawn pair is never used, so no label is reported for it
            "label": self.y, "target_label": self.ty if job.obj.uses_target else nan,
            "cosine_to_target_before": M.cosine(self.z, zt) if zt is not None else nan,
            "cosine_to_target_after": M.cosine(za, zt) if zt is not None else nan,
            "cosine_to_source_after": M.cosine(za, self.z),
            "relative_change": M.relative_change(za, self.z),
            "psnr": psnr, "ssim": ssim, "linf": linf, "l2": l2,
            "final_loss": final.cpu().numpy(), "steps_taken": taken,
        }
        for k in range(len(job.sigmas)):
            cols[f"detector_clean_sigma{k}"] = self.det_clean[k]
            cols[f"detector_attacked_sigma{k}"] = det_adv[k]
        for nm in job.names:
            cols[f"{nm}_clean_pred"] = self.clean_preds[nm]
            cols[f"{nm}_attacked_pred"] = adv_preds[nm]
        return cols


def _worst_case(runs: list[dict[str, Any]], y: np.ndarray, ty: np.ndarray, uses_target: bool) -> np.ndarray:
    """Per item, the index of the attack whose point is kept: broken (primary label wrong) first, then one that
    met the target's label (collide), then the lowest loss; ties go to the attack run first."""
    if len(runs) == 1:
        return np.zeros(len(y), dtype=np.int64)
    primary = lambda r: next(iter(r["preds"].values()))  # noqa: E731
    broken = np.stack([primary(r) != y for r in runs])
    matched = np.stack([(primary(r) == ty) if uses_target else np.zeros(len(y), bool) for r in runs])
    loss = np.stack([r["final"].cpu().numpy() for r in runs])
    order = np.lexsort((np.arange(len(runs))[:, None].repeat(len(y), 1), loss, ~matched, ~broken), axis=0)
    return order[0]


def _rows(runs: list[dict[str, Any]], chosen: np.ndarray, key: str) -> torch.Tensor:
    if len(runs) == 1:
        return runs[0][key]
    stacked = torch.stack([r[key] for r in runs])
    pick = torch.as_tensor(chosen, device=stacked.device)
    return stacked[pick, torch.arange(len(chosen), device=stacked.device)]


def run_attack(encoder: Encoder, dataset: ImageDataset, train_dataset: ImageDataset | None = None,
               config: AttackConfig | None = None, *, out_dir: str | Path | None = None, resume: bool = False,
               cache=None, backend: Any = None, stop_after_batches: int | None = None, **settings: Any) -> AttackResult:
    """Attack every item of ``dataset`` (normally the test split) at each ε and measure the damage.

    ``config`` (an :class:`AttackConfig`) says what to run; keyword ``settings`` override its fields
    (``run_attack(enc, test, objective="push", eps=[4/255], steps=50)``).  Probe / kNN classifiers are fitted on
    ``train_dataset``'s clean representations.  ``backend`` (default: the current one, see :mod:`medrep.backends`)
    runs the batches; with Ray they are sharded over workers, and every finished (batch, ε) unit is written to
    ``OUT/partial/`` here as it arrives, so resuming works the same whichever backend ran the interrupted run.
    """
    from medrep.backends import resolve_backend

    backend = resolve_backend(backend)
    cfg = (config or AttackConfig()).replace(**settings) if settings else (config or AttackConfig())
    if settings.get("protocol"):  # named as an option: the protocol's settings win over the options they fix
        cfg = with_protocol(cfg, cfg.protocol)
    if cfg.limit is not None and len(dataset) > cfg.limit:
        dataset = dataset.limit(cfg.limit, seed=cfg.seed)
    plan = _plan(encoder, dataset, train_dataset, cfg, cache, backend)
    job, meta = plan["job"], plan["meta"]
    n, bs = len(dataset), cfg.batch_size
    store = PartialStore(out_dir, digest_json({**meta, "train": plan["train_digest"]}), resume)
    n_batches = -(-n // bs)
    all_eps = tuple(range(len(cfg.eps)))

    def load(unit: tuple[int, tuple[int, ...]]) -> dict[int, dict[str, np.ndarray]] | None:
        # a batch's ε values are computed together: each ε's worst case includes the points kept at the
        # smaller ones, so a batch with any ε missing is recomputed whole (the same numbers, seeded)
        got = {e: store.load(_unit_name(unit[0], e)) for e in all_eps}
        return None if any(g is None for g in got.values()) else {e: g[0] for e, g in got.items()}

    def save(unit: tuple[int, tuple[int, ...]], arrays_by_eps: dict[int, dict[str, np.ndarray]]) -> None:
        b = unit[0]
        for e, arrays in arrays_by_eps.items():
            store.save(_unit_name(b, e), arrays)
        if stop_after_batches is not None and b + 1 >= stop_after_batches and b + 1 < n_batches:
            raise AttackInterrupted(f"stopped after {b + 1} batch(es) as asked")

    with evaluation(encoder), progress_bar(f"{job.obj.name} attack on {encoder.name}", n * len(cfg.eps)) as bar:
        done = run_units(job, encoder, dataset, [(b, all_eps) for b in range(n_batches)], backend, load=load, save=save,
                         progress=bar, size=lambda unit: (min(n, (unit[0] + 1) * bs) - unit[0] * bs) * len(all_eps))
    units = {(b, e): arrays for (b, _), by_eps in done.items() for e, arrays in by_eps.items()}
    result = _assemble(units, n_batches, job, meta, plan, dataset)
    result.head = encoder.head_fit(dataset.classes).to_dict() if encoder.has_head else None
    return result


def _plan(encoder: Encoder, dataset: ImageDataset, train_dataset: ImageDataset | None, cfg: AttackConfig, cache,
          backend) -> dict[str, Any]:
    """Validate everything before any work, draw the pairs, fit the classifiers; the job and its description."""
    eps_list = [check_eps(float(e)) for e in cfg.eps]
    if not eps_list:
        raise MedrepError("give at least one ε", where=Param("eps"))
    obj = make_objective(cfg.objective)
    random_start = obj.wants_random_start if cfg.random_start is None else bool(cfg.random_start)
    ball = make_ball(cfg.norm)  # validates the norm
    check_steps(cfg.steps)
    if cfg.step_size is not None and not cfg.step_size > 0:
        raise MedrepError(f"must be positive (got {cfg.step_size})", where=Param("step_size"))
    for name in cfg.attack:  # validates each attack with this norm and budget
        build_attack(name, ball.name, cfg.steps, cfg.queries)
    check_eps_budget(eps_list, ball.name)
    if cfg.target not in TARGET_MODES:
        raise MedrepError(f"unknown target mode {cfg.target!r} (choose from {', '.join(TARGET_MODES)})", where=Param("attack_target"))
    if cfg.batch_size < 1:
        raise MedrepError("must be at least 1", where=Param("batch_size"))
    if obj.needs_head and not encoder.has_head:
        raise MedrepError(f"the {obj.name} objective reads the logits, and model {encoder.name} has no head; "
                          "use collide or push", where=Param("objective"))
    names = resolve_classifiers(cfg.classifiers, encoder, dataset.classes)
    sigmas = check_detector(cfg.noise_sigma, cfg.noise_draws)
    needs_train = any(n in ("probe", "knn") for n in names) or (obj.uses_target and cfg.target == "centroid")
    if needs_train and train_dataset is None:
        raise MedrepError("probe / kNN classifiers and centroid targets need a training split", where="train_dataset")
    n = len(dataset)
    if n == 0:
        raise MedrepError("dataset has no items", where=getattr(dataset, "name", Param("data")))
    if ball.name == "l2":
        # the attacked pixels: the data's channels at the model's input size (see _Batch.load)
        check_eps_budget(eps_list, ball.name, (int(dataset[0].image.shape[0]), *encoder.preprocessing.size))
    labels = np.asarray(dataset.labels, dtype=np.int64)
    rep = Representation(cfg.layer, cfg.pool, cfg.representation_fn)
    # -- pairing: the seed alone decides, so it never depends on batching or resumption --------------
    target_idx, target_labels = draw_pairs(labels, cfg.seed, obj.uses_target, n_classes=len(dataset.classes),
                                           where=getattr(dataset, "name", Param("data")))
    fitted, centroids = _fit_classifiers(encoder, rep, train_dataset, cfg, names, obj, target_labels, needs_train, cache,
                                         backend)
    columns = (list(BASE_COLUMNS) + [f"{c}_{w}" for c in names for w in ("clean_pred", "attacked_pred")]
               + [f"detector_{w}_sigma{k}" for k in range(len(sigmas)) for w in ("clean", "attacked")]
               + attack_columns(cfg.attack) + (["float32_attacked_pred"] if cfg.dtype != "float32" else []))
    job = AttackJob(config=cfg, obj=obj, rep=rep, names=names, fitted=fitted, centroids=centroids, labels=labels,
                    target_idx=target_idx, target_labels=target_labels, random_start=random_start, sigmas=sigmas,
                    gallery=min(cfg.gallery_size, n), columns=columns)
    return {"job": job, "meta": _describe(cfg, obj, rep, names, sigmas, random_start, encoder, dataset),
            "train_digest": train_dataset.content_digest() if needs_train else None}


def _describe(cfg: AttackConfig, obj: Objective, rep: Representation, names: list[str], sigmas: list[float],
              random_start: bool, encoder: Encoder, dataset: ImageDataset) -> dict[str, Any]:
    """config / model / data as results.json records them (and the partials' digest covers them)."""
    config = {
        "objective": obj.name, "eps": list(cfg.eps), "norm": cfg.norm, "steps": int(cfg.steps),
        "step_size": cfg.step_size,
        "step_size_rule": None if cfg.step_size is not None else f"{cfg.relative_step}*eps/steps",
        "random_start": random_start, "target": cfg.target if obj.uses_target else None,
        "representation": rep.describe(), "classifiers": names, "batch_size": int(cfg.batch_size), "seed": int(cfg.seed),
        "noise_sigma": sigmas, "noise_draws": int(cfg.noise_draws), "early_stop": bool(cfg.early_stop),
        "n_boot": int(cfg.n_boot), "psnr_cap_db": M.PSNR_CAP_DB,
        "worst_case_over_smaller_eps": True,
    }
    if cfg.attack != ("pgd",) or cfg.dtype != "float32" or cfg.protocol is not None:
        # recorded only when set, so a plain PGD run keeps its digest (and its resumable partials)
        config.update(attack=list(cfg.attack), queries=int(cfg.queries) if "square" in cfg.attack else None,
                      criterion=obj.criterion if cfg.early_stop else None, dtype=cfg.dtype,
                      protocol=protocol_description(cfg.protocol), limit=cfg.limit)
        if cfg.protocol is not None:  # settings changed after the protocol was applied are named, never hidden
            fixed = with_protocol(AttackConfig(), cfg.protocol)
            config["protocol_deviations"] = {k: getattr(cfg, k) for k in PROTOCOLS[cfg.protocol]
                                             if getattr(cfg, k) != getattr(fixed, k)}
    model = {"name": encoder.name, "fingerprint": encoder.fingerprint, "has_head": encoder.has_head}
    data = {"name": getattr(dataset, "name", "dataset"), "n": len(dataset), "classes": list(dataset.classes),
            "digest": dataset.content_digest()}
    if dataset.patients is not None:
        data.update(n_images=len(dataset), n_patients=len(set(dataset.patients.tolist())), interval=CLUSTER_INTERVAL)
    return {"config": config, "model": model, "data": data}


def _fit_classifiers(encoder, rep, train_dataset, cfg, names, obj, target_labels, needs_train, cache, backend):
    centroids = None
    fitted: dict[str, Any] = {}
    if not needs_train:
        return fitted, centroids
    train_z, train_y = _train_representations(encoder, rep, train_dataset, cfg.batch_size, cache, backend)
    if "probe" in names:
        fitted["probe"] = fit_probe(train_z, train_y, cfg.seed)
    if "knn" in names:
        fitted["knn"] = fit_knn(train_z, train_y)
    if obj.uses_target and cfg.target == "centroid":
        centroids = {int(c): train_z[train_y == c].mean(0) for c in np.unique(train_y)}
        missing = sorted(set(target_labels.tolist()) - set(centroids))
        if missing:
            raise MedrepError(f"training split has no items of class(es) {missing} for centroid targets",
                              where="train_dataset")
    return fitted, centroids


def _assemble(units, n_batches: int, job: AttackJob, meta: dict[str, Any], plan: dict[str, Any],
              dataset: ImageDataset) -> AttackResult:
    cfg = job.config
    ids = dataset.ids
    n = len(dataset)
    if not job.obj.uses_target:
        target_ids: list[str | None] = [None] * n
    elif cfg.target == "centroid":
        target_ids = [f"centroid:{dataset.classes[t] if t < len(dataset.classes) else t}" for t in job.target_labels]
    else:
        target_ids = [ids[j] for j in job.target_idx]
    per_eps = []
    for e, eps_v in enumerate(cfg.eps):
        parts = [units[(b, e)] for b in range(n_batches)]
        gal = [p["gallery_adv"] for p in parts if "gallery_adv" in p]
        passes = sum(p["passes"] for p in parts if "passes" in p)
        per_eps.append(EpsResult(
            eps=eps_v, step_size=cfg.step_size if cfg.step_size is not None else cfg.relative_step * eps_v / cfg.steps,
            columns=job.columns, values=np.concatenate([p["values"] for p in parts]),
            loss_history=np.concatenate([p["loss"] for p in parts]), gallery_adv=np.concatenate(gal) if gal else None,
            attacks=list(cfg.attack),
            passes={a: {"gradient": int(passes[k][0]), "forward": int(passes[k][1]), "gradient_calls": int(passes[k][2])}
                    for k, a in enumerate(cfg.attack)} if not isinstance(passes, int) else {}))
    first = [units[(b, 0)] for b in range(n_batches)]
    gs = [p["gallery_source"] for p in first if "gallery_source" in p]
    gt = [p["gallery_target"] for p in first if "gallery_target" in p]
    result = AttackResult(meta["config"], meta["model"], meta["data"], job.names, list(ids), target_ids, per_eps,
                          np.concatenate(gs) if gs else None, np.concatenate(gt) if gt else None)
    groups = bootstrap_groups(dataset)  # patients: intervals resample their images together
    result.summaries = [summarise(r, job.names, job.obj.uses_target, cfg.seed, cfg.n_boot, job.sigmas, cfg.noise_draws,
                                  groups) for r in per_eps]
    return result


def check_detector(noise_sigma: float | Sequence[float], noise_draws: int) -> list[float]:
    """The noise σ values as a list; each option's error names that option."""
    sigmas = [float(noise_sigma)] if isinstance(noise_sigma, (int, float)) else [float(v) for v in noise_sigma]
    if not sigmas or any(not v > 0 for v in sigmas):
        raise MedrepError(f"needs one or more positive σ values (got {sigmas})", where=Param("noise_sigma"))
    if not noise_draws >= 1:
        raise MedrepError(f"must be at least 1 (got {noise_draws})", where=Param("noise_draws"))
    return sigmas


def check_eps_budget(eps: Sequence[float], norm: str, shape: Sequence[int] | None = None) -> None:
    """ε within what the norm allows on [0, 1] pixels: an L∞ ε bounds each pixel's change (at most the whole
    range, 1); an L2 ε bounds the length of the whole change, at most √(C·H·W) (checked once ``shape`` is known)."""
    if not eps:
        return
    if norm == "linf" and max(eps) > 1:
        raise MedrepError(f"ε is in [0, 1] pixel units (got {max(eps)}); write 8/255 as 0.0314", where=Param("eps"))
    if norm == "l2" and shape is not None:
        bound = math.sqrt(math.prod(int(v) for v in shape))
        if max(eps) > bound:
            raise MedrepError(f"an L2 ε cannot exceed √(C·H·W) = {bound:.4g}, the largest distance between two "
                              f"{'×'.join(str(int(v)) for v in shape)} images in [0, 1] (got {max(eps)})", where=Param("eps"))


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
