"""What the text-overlay test found: :class:`OverlayResult` (per model: clean accuracies, and per word the
embedding shift, flip rates and pull toward the written class)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medrep.overlay.render import TextOverlay
from medrep.results import Result


@dataclass
class OverlayResult(Result):
    kind: str = "overlay"
    classes: list[str] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → {"zero_shot": note, "clean": {...}, "words": {...}}
    overlays: list[TextOverlay] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for name, m in self.models.items():
            for word, w in m["words"].items():
                row: dict[str, Any] = {"model": name, "word": word, "target_class": w.get("target_class")}
                for key, met in w["metrics"].items():
                    row[key] = met.value
                    row[f"{key}_low"] = met.low
                    row[f"{key}_high"] = met.high
                row.update({f"probe_flips_to_{c}": n for c, n in w["probe_flips_to"].items()})
                rows.append(row)
        return rows

    def readings(self, dominant_share: float = 0.8, negligible_rate: float = 0.05) -> list[str]:
        """One plain-language line per model: does written text sway it, and does it follow the word's meaning
        or only its presence?"""
        lines = []
        for name, m in self.models.items():
            words = m["words"]
            rates = {w: v["metrics"]["probe_flip_rate"].value for w, v in words.items() if "probe_flip_rate" in v["metrics"]}
            if not rates:
                continue
            lo, hi = min(rates.values()), max(rates.values())
            span = f"{lo:.0%}" if abs(hi - lo) < 0.005 else f"{lo:.0%}–{hi:.0%}"
            if hi < negligible_rate:
                lines.append(f"{name}: written words barely move its answers (probe flip rate at most {hi:.0%}).")
                continue
            to_class: dict[str, int] = {}
            for v in words.values():
                for c, k in v["probe_flips_to"].items():
                    to_class[c] = to_class.get(c, 0) + int(k)
            total = sum(to_class.values())
            top = max(to_class, key=to_class.get) if total else None
            follows = [w for w, v in words.items() if v.get("target_class") is not None
                       and v["metrics"].get("probe_to_target_rate") is not None
                       and v["metrics"]["probe_to_target_rate"].value >= dominant_share]
            if top is not None and to_class[top] >= dominant_share * total and len(words) > 1 and len(follows) < len(words):
                lines.append(f"{name}: writing a word flips {span} of the probe's answers, {to_class[top] / total:.0%} of "
                             f"them to '{top}' whatever the word says — the presence of text, not its meaning, sways "
                             "the model.")
            elif follows and len(follows) == len(words):
                lines.append(f"{name}: writing a class name flips {span} of the probe's answers toward the written class — "
                             "the model reads the text (a typographic attack works on it).")
            else:
                lines.append(f"{name}: writing a word flips {span} of the probe's answers, with no single destination.")
        return lines

    def to_dict(self) -> dict[str, Any]:
        self.metrics = {f"{name}/{word}/{k}": v for name, m in self.models.items() for word, w in m["words"].items()
                        for k, v in w["metrics"].items()}
        self.tables = {"overlay": self.table()}
        out = super().to_dict()
        out["classes"] = self.classes
        out["models"] = {name: {"zero_shot": m["zero_shot"], "clean": {k: v.to_dict() for k, v in m["clean"].items()},
                                "words": {word: {**{k: v.to_dict() for k, v in w["metrics"].items()},
                                                 "target_class": w["target_class"],
                                                 "probe_flips_to": w["probe_flips_to"], "knn_flips_to": w["knn_flips_to"],
                                                 "cache_key": w["cache_key"]}
                                          for word, w in m["words"].items()}}
                         for name, m in self.models.items()}
        out["overlays"] = [o.to_dict() for o in self.overlays]
        out["settings"] = self.settings
        return out
