"""The one result schema: a metric is (value, low, high, n); its interval comes from :mod:`medrep.intervals`
(a seeded bootstrap; proportions of 0/1 outcomes: the Wilson score interval)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

RESULTS_SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class Metric:
    value: float
    low: float | None = None
    high: float | None = None
    n: int | None = None
    #: None: items resampled independently (or Wilson for a proportion); "cluster bootstrap over patients"
    #: when the images of one patient were resampled together (then ``n_patients`` is how many there were)
    interval: str | None = None
    n_patients: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}
        if self.interval is None:  # results without patients keep their exact previous form
            out.pop("interval")
            out.pop("n_patients")
        return out

    def __str__(self) -> str:
        if self.low is None or self.high is None:
            return f"{self.value:.4g}"
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"


def metric_rows(group: str, metrics: dict[Any, dict[str, "Metric"]]) -> list[dict[str, Any]]:
    """Long-format rows (group, metric, value, low, high, n) from {group value: {metric name: Metric}} —
    the CSV every analysis writes beside its results.json."""
    return [{group: g, "metric": name, "value": m.value, "low": m.low, "high": m.high, "n": m.n}
            for g, ms in metrics.items() for name, m in ms.items()]


@dataclass
class Result:
    """Base for analysis results: named metrics plus free-form tables, serialised with one schema."""

    kind: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "kind": self.kind,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "tables": self.tables,
            **self.extra,
        }


_MOVED_TO_INTERVALS = {"BOOTSTRAP_BLOCK_ELEMENTS", "CLUSTER_INTERVAL", "bootstrap_blocks", "bootstrap_metric", "bootstrap_paired",
                       "cluster_bootstrap_metric", "cluster_bootstrap_values", "cluster_members", "is_clustered",
                       "wilson_interval"}


def __getattr__(name: str) -> Any:
    """The interval functions live in :mod:`medrep.intervals`; their older import path here still works."""
    if name in _MOVED_TO_INTERVALS:
        import medrep.intervals

        return getattr(medrep.intervals, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
