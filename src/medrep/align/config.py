"""What an alignment run computes: :class:`AlignConfig` (see :mod:`medrep.configs` for how its fields become
flags of ``medrep align`` and keys of the audit's ``analyses.alignment`` section)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from medrep.configs import setting


@dataclass(frozen=True)
class AlignConfig:
    """Anchors, the estimator of T and the evaluation.  Which encoders are aligned (a target image encoder for
    stitching, a text encoder for caption alignment) and the caches are runtime arguments of
    :func:`medrep.align.run.run_alignment`."""

    anchors: Any = setting((500,), "anchor count or a sweep of counts (a list, or comma-separated text)")
    estimator: str = setting("ortho", "how T is estimated (a name of the estimator registry)")
    estimator_options: Mapping[str, Any] = setting(
        None, "the estimator's own options by name (on the command line: the flags the registry declares, e.g. "
              "--affine-solver)", cli=False, default_factory=dict)
    anchor_selection: str = setting("random", "anchors from the train split: random, balanced or kmeans")
    ridge: float = setting(0.0, "ridge penalty for linear / lortho / affine")
    scale: bool = setting(True, "standard-scale each space with its anchors' statistics", flag="no-scale", negate=True)
    relative: bool = setting(False, "also stitch through relative representations (cosine to the anchors)")
    prompt_file: str | Mapping[str, Any] | None = setting(None, "JSON file (or mapping) {class: prompt or [prompts]}")
    prompt: tuple[str, ...] | None = setting(None, "prompt templates with {label} (and optionally {image})")
    center_text: bool = setting(True, "centre text vectors on the anchor captions' mean", flag="no-center-text",
                                negate=True)
    train_split: str = setting("train", "split the anchors and the target classifier come from")
    test_split: str = setting("test", "split the results are measured on")
    limit: int | None = setting(None, "measure on at most N test items (seeded choice)")
    layer: str | None = setting(None, "module to embed at (default: each model's representation)")
    pool: str | None = setting(None, "pooling of that module: cls or mean (default: the model's own)")
    batch_size: int = setting(64, "images embedded together")
    n_boot: int = setting(1000, "bootstrap resamples for the 95% intervals")
    seed: int = setting(0, "seed of the anchor choice, the shuffled controls and the bootstrap")

    def __post_init__(self) -> None:
        object.__setattr__(self, "estimator_options", dict(self.estimator_options or {}))
        if self.prompt is not None and not isinstance(self.prompt, str):
            object.__setattr__(self, "prompt", tuple(self.prompt))
