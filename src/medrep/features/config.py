"""What a feature-distribution analysis computes: :class:`FeaturesConfig` (see :mod:`medrep.configs` for how its
fields become flags of ``medrep features`` and keys of the audit's ``analyses.features`` section)."""
from __future__ import annotations

from dataclasses import dataclass

from medrep.configs import setting


@dataclass(frozen=True)
class FeaturesConfig:
    """Probes, separability, projections and cross-model similarity of frozen embeddings."""

    layers: tuple[str | None, ...] | None = setting(None, "modules to embed at (default: each model's representation)",
                                                    flag="layer")
    pool: str | None = setting(None, "pooling of that module: cls or mean (default: the model's own)")
    train_split: str = setting("train", "split the probes are fitted on")
    test_split: str = setting("test", "split everything is measured on")
    limit: int | None = setting(None, "use at most N items of each split (seeded choice)")
    k: int = setting(20, "neighbours for the kNN classifier")
    mutual_k: int = setting(10, "neighbours for mutual-kNN alignment")
    shots: tuple[int, ...] = setting((1, 5, 10), "few-shot sizes per class")
    n_draws: int = setting(10, "repeated draws per few-shot size", flag="draws", key="draws")
    n_boot: int = setting(200, "bootstrap resamples for the 95% intervals")
    n_permutations: int = setting(200, "permutations for the CKA / mutual-kNN null")
    cka_estimator: str = setting("biased", "linear CKA estimator: biased or unbiased", flag="cka", key="cka")
    projections: tuple[str, ...] = setting(("tsne", "umap"), "2-D pictures to draw", flag="projection")
    max_projection: int = setting(2000, "most embeddings drawn in one 2-D picture (a seeded subsample above it)")
    batch_size: int = setting(64, "images embedded together")
    seed: int = setting(0, "seed of every random choice (subsets, few-shot draws, bootstrap, permutations)")
