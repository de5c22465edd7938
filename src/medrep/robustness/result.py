"""What an attack run returns: per-item arrays per ε (the source of truth) and their bootstrapped summaries."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from medrep.intervals import bootstrap_metric
from medrep.results import RESULTS_SCHEMA_VERSION, Metric
from medrep.robustness import metrics as M


@dataclass
class EpsResult:
    eps: float
    step_size: float
    columns: list[str]
    values: np.ndarray  # (N, len(columns)) float64: the per-item source of truth
    loss_history: np.ndarray  # (N, steps + 1): the first attack's loss per step
    gallery_adv: np.ndarray | None = None  # (G, C, H, W)
    attacks: list[str] = field(default_factory=list)  # the attacks run, in order (several: worst case per item)
    passes: dict[str, dict[str, int]] = field(default_factory=dict)  # attack → items through the network

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
    head: dict[str, Any] | None = None  # HeadFit.to_dict() of a model with a head: whether it classifies this data
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
            "head": self.head,
            "pairs": [{"source": s, "target": t, "source_label": name(int(a)), "target_label": name(int(b)) if t else None}
                      for s, t, a, b in zip(self.source_ids, self.target_ids, labels, targets)],
            "results": self.summaries,
            **({"subgroups": self.subgroups.to_dict()} if self.subgroups is not None else {}),
        }


def summarise(r: EpsResult, names: list[str], uses_target: bool, seed: int, n_boot: int,
              sigmas: Sequence[float], draws: int, groups: np.ndarray | None = None) -> dict[str, Any]:
    """Aggregate one ε from its per-item columns (bootstrap 95% intervals, seeded; over whole patients
    when ``groups`` gives each item's patient)."""
    boot = lambda v: bootstrap_metric(v, n_boot=n_boot, seed=seed, groups=groups).to_dict()  # noqa: E731
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
        auc = M.detector_auc_bootstrap(dc, da, n_boot=n_boot, seed=seed, groups=groups)
        detector.append({"sigma": sg, "roc_auc": auc.to_dict(), "score_clean_mean": float(dc.mean()),
                         "score_attacked_mean": float(da.mean())})
    return {
        "eps": r.eps,
        "eps_255": round(r.eps * 255, 4),
        "attacks": attack_summary(r, names[0], seed, n_boot),
        "step_size": r.step_size,
        "classifier": names[0],
        "metrics": metrics,
        "classifiers": per_clf,
        "loss_per_step": [float(v) for v in r.loss_history.mean(0)],
        "detector": {"method": "gaussian-noise label consistency: score = share of noisy copies whose label changes",
                     "classifier": names[0], "draws": draws, "by_sigma": detector},
    }




def attack_columns(attacks: Sequence[str]) -> list[str]:
    """Per-item columns of each attack when several run (the kept point is the worst case over them)."""
    if len(attacks) < 2:
        return []
    return ["attack_index"] + [f"attack_{a}_{w}" for a in attacks for w in ("pred", "final_loss", "steps_taken")]


def attack_summary(r: EpsResult, primary: str, seed: int, n_boot: int) -> dict[str, Any]:
    """Each attack's attacked accuracy beside the worst case's, which attack won how often, the passes each
    made, and whether the black-box Square attack beat every gradient attack (gradient masking suspected)."""
    boot = lambda v: bootstrap_metric(v, n_boot=n_boot, seed=seed).to_dict()  # noqa: E731
    y = r.column("label")
    adv = r.column(f"{primary}_attacked_pred")
    several = len(r.attacks) > 1
    broken_by = {a: (r.column(f"attack_{a}_pred") if several else adv) != y for a in r.attacks}
    per = {a: {"attacked_accuracy": boot(~broken_by[a]), "passes": r.passes.get(a, {}),
               "steps_taken_mean": float(np.mean(r.column(f"attack_{a}_steps_taken") if several else r.column("steps_taken")))}
           for a in r.attacks}
    out: dict[str, Any] = {"names": list(r.attacks), "per_attack": per, "classifier": primary,
                           "worst_case_attacked_accuracy": boot(adv == y)}
    smaller = r.column("from_smaller_eps") == 1 if "from_smaller_eps" in r.columns else np.zeros(len(y), bool)
    out["kept_from_smaller_eps"] = int(smaller.sum())
    if several:
        chosen = r.column("attack_index").astype(int)
        broken = adv != y
        out["wins"] = {a: int(((chosen == i) & broken).sum()) for i, a in enumerate(r.attacks)}
        out["wins"]["smaller ε"] = int((smaller & broken).sum())
        out["unbroken"] = int((~broken).sum())
    if "float32_attacked_pred" in r.columns:  # the attack ran under bfloat16 autocast; its first attack again in float32
        out["float32_reference"] = {"attack": r.attacks[0],
                                    "attacked_accuracy": boot(r.column("float32_attacked_pred") == y),
                                    "autocast_attacked_accuracy": per[r.attacks[0]]["attacked_accuracy"]}
    gradient = [a for a in r.attacks if a != "square"]
    if "square" in r.attacks and gradient:
        acc = {a: per[a]["attacked_accuracy"]["value"] for a in r.attacks}
        only = broken_by["square"] & ~np.any([broken_by[a] for a in gradient], axis=0)
        out["square_only_breaks"] = int(only.sum())
        out["gradient_masking_suspected"] = bool(acc["square"] < min(acc[a] for a in gradient))
    return out
