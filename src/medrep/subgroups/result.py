"""The subgroup analysis's result: per attribute, each figure by subgroup with its gap, separability and
the shortcut check per model; serialised into the ``subgroups`` key of a command's results.json."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medrep.results import Metric


def _plain(value: Any) -> Any:
    if isinstance(value, Metric):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class AttributeResult:
    name: str
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # subgroup → {n, too_small}
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # figure → breakdown (see stats.breakdown)
    separability: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → probe AUROC, KS tests
    shortcut: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → shortcut check

    def to_dict(self) -> dict[str, Any]:
        groups = {g: {**info, "figures": {f: b["groups"][g]["metric"].to_dict() for f, b in self.figures.items()
                                          if g in b["groups"]}} for g, info in self.groups.items()}
        return {"groups": groups,
                "gap": {f: b["gap"] for f, b in self.figures.items()},
                "gap_p": {f: b["gap_p"] for f, b in self.figures.items()},
                "worst": {f: b["worst"] for f, b in self.figures.items()},
                "separability": _plain(self.separability), "shortcut": _plain(self.shortcut)}


@dataclass
class SubgroupResult:
    attributes: dict[str, AttributeResult] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**{name: a.to_dict() for name, a in self.attributes.items()},
                **({"_notes": self.notes} if self.notes else {})}

    def largest_gap(self, figure_suffix: str | None = None) -> dict[str, Any] | None:
        """The largest gap among the judged subgroups over all attributes (optionally of figures whose key ends
        with ``figure_suffix``): {attribute, figure, gap, gap_p, worst, best}."""
        best = None
        for a in self.attributes.values():
            for f, b in a.figures.items():
                if b["gap"] is None or (figure_suffix and not f.endswith(figure_suffix)):
                    continue
                if best is None or b["gap"] > best["gap"]:
                    best = {"attribute": a.name, "figure": f, "gap": b["gap"], "gap_p": b["gap_p"],
                            "worst": b["worst"], "best": b["best"]}
        return best
