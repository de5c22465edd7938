"""What an alignment run found: :class:`AlignResult` (metrics per anchor count) and what each metric means."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medrep.results import RESULTS_SCHEMA_VERSION, Metric, metric_rows

# what each metric means, for the report and the CSV
METRIC_HELP = {
    "target_accuracy": "target encoder's own linear probe on its own test embeddings (the ceiling)",
    "stitched_accuracy": "source test images → T → classifier trained on the target's space",
    "naive_accuracy": "source embeddings zero-padded/truncated into the target's classifier, no T",
    "shuffled_accuracy": "T fitted on wrongly paired anchors: mean over 5 seeded permutations of the target side",
    "shuffled_accuracy_sd": "spread of the shuffled-pairs control: SD over its permutations (low/high: worst and best one)",
    "relative_stitched_accuracy": "classifier on the target's relative representation applied to the source's",
    "retrieval_top1": "held-out pairs: T(source_i) nearest (cosine) to target_i among all test items",
    "retrieval_top5": "held-out pairs: target_i among the 5 nearest to T(source_i)",
    "mean_cosine": "mean cosine between T(source_i) and target_i",
    "zero_shot_accuracy": "caption alignment: image → T (fitted on image–caption anchors) → text space, argmax cosine "
                          "to the class prompt ensembles",
    "zero_shot_naive_accuracy": "image embedding padded/truncated into text space, no T",
    "zero_shot_shuffled_accuracy": "T fitted on shuffled image–caption pairs: mean over 5 seeded permutations",
    "zero_shot_shuffled_accuracy_sd": "spread of that control: SD over its permutations (low/high: worst and best one)",
    "zero_shot_retrieval_top1": "test image → T nearest to its own caption among all test captions",
    "zero_shot_retrieval_top5": "own caption among the 5 nearest",
    "zero_shot_mean_cosine": "mean cosine between T(image_i) and caption_i embeddings",
    "chance_accuracy": "1 / number of classes",
    "caption_prompt_accuracy": "the test captions themselves classified by the prompts (prompt quality ceiling)",
    "native_zero_shot_accuracy": "the model's own text tower with the same prompts",
}
FEWSHOT_NOTE = ("This is caption alignment, not zero-shot (in effect few-shot): T is fitted on image–caption anchors, and when captions name "
                "the class (as phantom captions do) the labels reach the text space through the anchors.")


@dataclass
class AlignResult:
    source: str
    target: str | None
    text: str | None
    estimator: str
    anchor_selection: str
    seed: int
    anchor_counts: list[int]
    by_anchors: dict[int, dict[str, Metric]] = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0
    classes: list[str] = field(default_factory=list)
    prompts: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    cache_keys: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Metric]:
        """Headline metrics: those at the largest anchor count."""
        return self.by_anchors[max(self.by_anchors)] if self.by_anchors else {}

    def table(self) -> list[dict[str, Any]]:
        return metric_rows("anchors", {n: self.by_anchors[n] for n in sorted(self.by_anchors)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "kind": "align",
            "source": self.source, "target": self.target, "text": self.text,
            "estimator": self.estimator, "anchor_selection": self.anchor_selection, "seed": self.seed,
            "anchor_counts": self.anchor_counts, "n_train": self.n_train, "n_test": self.n_test, "classes": self.classes,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "by_anchors": {str(n): {k: m.to_dict() for k, m in ms.items()} for n, ms in sorted(self.by_anchors.items())},
            "metric_help": {k: v for k, v in METRIC_HELP.items() if k in self.metrics},
            "tables": {"sweep": self.table()},
            "prompts": self.prompts, "options": self.options, "cache_keys": self.cache_keys, "notes": self.notes,
        }

    def summary(self) -> str:
        """A few readable lines for the terminal."""
        lines = [f"alignment {self.source} → {self.target or self.text} ({self.estimator}, {self.anchor_selection} anchors, "
                 f"{self.n_test} test items)"]
        for n in sorted(self.by_anchors):
            ms = self.by_anchors[n]
            parts = [f"{k}={ms[k].value:.3f}" for k in ("stitched_accuracy", "target_accuracy", "naive_accuracy",
                                                        "shuffled_accuracy", "retrieval_top1", "zero_shot_accuracy",
                                                        "zero_shot_naive_accuracy", "chance_accuracy") if k in ms]
            lines.append(f"  {n:>5} anchors: " + "  ".join(parts))
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])
