"""The subgroup analysis's settings (one frozen dataclass) and the parsing of ``--by`` / ``by:``."""
from __future__ import annotations

from dataclasses import dataclass

from medrep.data.ages import DECADES, parse_age_bins  # noqa: F401  (re-exported)
from medrep.errors import MedrepError, Param


@dataclass(frozen=True)
class SubgroupConfig:
    by: tuple[str, ...]
    min_group_size: int = 30  # smaller subgroups are shown but flagged "too small to judge" and kept out of the gap
    n_boot: int = 1000  # resamples behind every 95% interval (patients resampled whole where ids exist)
    n_permutations: int = 1000  # within-class shuffles of the attribute behind each gap's p-value
    separability_permutations: int = 50  # refits of the cross-validated attribute probe for its null
    folds: int = 5  # cross-validation folds of the attribute probe (fewer when a subgroup is smaller)
    probe_dims: int = 32  # the attribute probe reads the embeddings' leading principal components
    pca_modes: int = 5  # leading PCA modes compared between subgroups (Kolmogorov–Smirnov)
    age_bins: tuple[float, ...] = DECADES  # edges for numeric age attributes
    alpha: float = 0.05  # significance level of the KS tests (after Holm's correction)
    min_drop: float = 0.01  # smallest re-weighted accuracy drop that flags a shortcut (its interval must also exclude 0)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.by:
            raise MedrepError("name at least one attribute", where="by")
        if self.min_group_size < 1:
            raise MedrepError("must be at least 1", where="min_group_size")
        if self.folds < 2:
            raise MedrepError("cross-validation needs at least 2 folds", where="folds")
        if list(self.age_bins) != sorted(set(self.age_bins)):
            raise MedrepError("age-bin edges must increase strictly", where="age_bins")


def parse_by(text: str | list[str] | tuple[str, ...] | None, where: str = Param("by")) -> tuple[str, ...]:
    """``"site,sex"`` (or a list) → ("site", "sex"); an empty or repeated name is refused."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(p.strip() for p in parts)
    if any(not n for n in names):
        raise MedrepError(f"expected attribute names separated by commas, got {text!r}", where=where)
    if len(set(names)) != len(names):
        raise MedrepError("an attribute is listed twice", where=where)
    return names
