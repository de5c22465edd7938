"""What an explanation run returns: :class:`ExplainResult` (``to_dict()`` is what results.json holds; the audit
report reads the same object) and its plain-text table."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from medrep.explain.registry import baseline_methods
from medrep.explain.scores import TOPK_PERCENTS
from medrep.results import RESULTS_SCHEMA_VERSION, Metric, metric_rows

# which direction is better, for readers of the table
HIGHER_IS_BETTER = {"pointing": True, "iou": True, "mass": True, "auprc": True, "deletion": False, "insertion": True,
                    "road": None}


def higher_is_better(key: str) -> bool:
    """Direction of a metric key: 'iou_box@10' → iou, 'deletion_auc' → deletion, 'road_morf' → lower (the score
    should fall when the most relevant pixels go), 'road_lerf' → higher."""
    if key.startswith("road_"):
        return key == "road_lerf"
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
        elif m == "road":
            keys += ["road_morf", "road_lerf"]
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
    mask_area: dict[str, float] | None  # None: the data has no masks
    settings: dict[str, Any]
    seconds_per_image: dict[str, float] = field(default_factory=dict)  # wall-clock: the manifest's, not results.json's
    gallery: dict[str, Any] = field(default_factory=dict)  # images (G,C,H,W), masks (G,H,W), maps {method: (G,H,W)}
    dead: dict[str, np.ndarray] = field(default_factory=dict)  # method → (n,) bool: the map was constant
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (n,) class index per id
    sanity: dict[str, Any] | None = None        # sanity.summarise_sanity's record, None when no test ran
    protocol: dict[str, Any] = field(default_factory=dict)  # {'chexlocalize': {method: ...}} / {'chung2025': ...}
    road: dict[str, Any] = field(default_factory=dict)      # method → {percentages, morf, lerf} mean curves
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    subgroups: Any = None  # medrep.subgroups.result.SubgroupResult with --by
    # {"run": False, "reason", "metrics": the mask scores left out} on data without masks
    localisation: dict[str, Any] = field(default_factory=lambda: {"run": True})

    @property
    def dead_maps(self) -> dict[str, int]:
        """method → how many of its maps were constant (they point nowhere and score 0 on pointing and IoU)."""
        return {m: int(np.count_nonzero(self.dead[m])) if m in self.dead else 0 for m in self.methods}

    def table(self) -> list[dict[str, Any]]:
        """Rows (method, metric, value, low, high, n) — the CSV and the report's table."""
        return metric_rows("method", {method: self.metrics[method] for method in self.methods})

    def method_records(self) -> dict[str, dict[str, Any]]:
        """Per method: auprc, road, sanity, chexlocalize / chung2025 (when run) and the verdict, as results.json holds."""
        out: dict[str, dict[str, Any]] = {}
        for m in self.methods:
            rec: dict[str, Any] = {}
            if "auprc" in self.metrics.get(m, {}):
                rec["auprc"] = self.metrics[m]["auprc"].to_dict()
            if m in self.road:
                rec["road"] = self.road[m]
            if self.sanity is not None and m in self.sanity["methods"]:
                rec["sanity"] = self.sanity["methods"][m]
            for name, per_method in self.protocol.items():
                if m in per_method:
                    rec[name] = per_method[m]
            if m in self.verdicts:
                rec["verdict"] = self.verdicts[m]
            out[m] = rec
        return out

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
            "by_method": self.method_records(),
            "sanity": None if self.sanity is None else {k: v for k, v in self.sanity.items() if k != "methods"},
            "mask_area": self.mask_area,
            "localisation": self.localisation,
            "dead_maps": self.dead_maps,
            "n_images": len(self.ids),
            "ids": self.ids,
            "settings": self.settings,
            **({"subgroups": self.subgroups.to_dict()} if self.subgroups is not None else {}),
        }

    def format_verdicts(self) -> str:
        """One line per method: localises / depends on the model / faithful, then the sentence."""
        lines = []
        for m in self.methods:
            v = self.verdicts.get(m)
            if not v:
                continue
            if v.get("baseline") and "localises" not in v:
                lines.append(f"{m}: baseline")
                continue
            lines.append(f"{m}: localises {v['localises']['answer']}, depends on the model {v['depends_on_model']['answer']}, "
                         f"faithful {v['faithful']['answer']}" + (" (baseline)" if v.get("baseline") else ""))
            lines.append(f"  {v['sentence']}")
        return "\n".join(lines)

    def format_chexlocalize(self) -> str:
        """The CheXlocalize figures: one line per method (overall hit rate and mIoU with intervals, and the percentage
        decrease from the human benchmark), after one line on the human benchmark or on its absence."""
        per_method = self.protocol.get("chexlocalize")
        if not per_method:
            return ""

        def fig(d: dict | None, pct: bool = False) -> str:
            if not d or d.get("value") is None:
                return "n/a"
            f = "{:.1f}%" if pct else "{:.3f}"
            return f"{f.format(d['value'])} [{f.format(d['low'])}, {f.format(d['high'])}]"

        first = per_method[self.methods[0]] if self.methods[0] in per_method else next(iter(per_method.values()))
        human = first.get("human_benchmark")
        if human is None:
            lines = [f"CheXlocalize: {first.get('human_benchmark_note', 'no human benchmark in this data')}"]
        else:
            hit = fig((human["hit_rate"] or {}).get("overall")) if human["hit_rate"] else "n/a (no points marked)"
            lines = [f"CheXlocalize human benchmark: hit rate {hit}, mIoU {fig(human['miou']['overall'])}"]
        for m in self.methods:
            rec = per_method.get(m)
            if rec is None:
                continue
            line = f"  {m}: hit rate {fig(rec['hit_rate']['overall'])}, mIoU {fig(rec['miou']['overall'])}"
            hb = rec.get("human_benchmark")
            if hb is not None:
                dec = hb["percentage_decrease"]
                line += (f"; decrease from the human benchmark: hit rate {fig((dec['hit_rate'] or {}).get('overall'), True)}, "
                         f"mIoU {fig(dec['miou']['overall'], True)}")
            lines.append(line)
        return "\n".join(lines)

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
        text = (f"{table}\nmean [{self.interval_legend()}]; {up} higher is better, {down} lower is better "
                f"(deletion_auc: the score should fall fast as the top pixels go)")
        if not self.localisation.get("run", True):
            asked = ", ".join(self.localisation["metrics"])
            text += f"\nlocalisation{f' ({asked})' if asked else ''}: {self.localisation['reason']}"
        return text

    def interval_legend(self) -> str:
        """What the bracketed intervals are: Wilson score intervals for the pointing game (one 0/1 hit per
        image), percentile bootstrap intervals over images for every other score."""
        n_boot = self.settings.get("bootstrap", {}).get("n_boot")
        boot = f", {n_boot} resamples" if n_boot else ""
        keys = list(self.metric_names)
        wilson = "Wilson score interval for pointing (a 0/1 hit per image)"
        if keys == ["pointing"]:
            return f"95% CI over images: {wilson}"
        if "pointing" in keys:
            return f"95% CI over images: {wilson}, percentile bootstrap for the others{boot}"
        return f"95% bootstrap CI over images{boot}"


