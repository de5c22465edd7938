"""What counts as success, kept apart from the attacks (as in Foolbox's ``criteria``).

A criterion maps a batch of perturbed pixels (and, for speed, their representation) to a bool per
item.  They serve both for reporting and as an attack's early-exit rule; ``subset(index)`` restricts one
to some of the batch's items (the ones an attack still runs).  Each objective names its criterion
(``Objective.criterion``); :func:`make_criterion` builds it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from medrep.robustness.classifiers import Classifier


class Criterion:
    def __call__(self, x_adv: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class Misclassified(Criterion):
    """The classifier no longer gives the true label."""

    def __init__(self, classifier: Classifier, labels: np.ndarray):
        self.classifier, self.labels = classifier, np.asarray(labels)

    def __call__(self, x_adv, z=None):
        return torch.as_tensor(self.classifier.predict(x_adv, z) != self.labels, device=x_adv.device)

    def subset(self, index):
        return Misclassified(self.classifier, self.labels[_np(index)])


class TargetMatched(Criterion):
    """The classifier gives the target's label (the paper's match success)."""

    def __init__(self, classifier: Classifier, target_labels: np.ndarray):
        self.classifier, self.target_labels = classifier, np.asarray(target_labels)

    def __call__(self, x_adv, z=None):
        return torch.as_tensor(self.classifier.predict(x_adv, z) == self.target_labels, device=x_adv.device)

    def subset(self, index):
        return TargetMatched(self.classifier, self.target_labels[_np(index)])


class CosineAtLeast(Criterion):
    """The representation is at least this cosine-similar to a reference."""

    def __init__(self, representation_fn, reference: torch.Tensor, threshold: float):
        self.representation_fn, self.reference, self.threshold = representation_fn, reference, threshold

    def __call__(self, x_adv, z=None):
        if z is None:
            with torch.no_grad():
                z = self.representation_fn(x_adv)
        return F.cosine_similarity(z.float(), self.reference.float(), dim=1) >= self.threshold  # float16 norms overflow

    def subset(self, index):
        return CosineAtLeast(self.representation_fn, self.reference[index], self.threshold)


#: name → what it needs: the classifier and the true labels, or the classifier and the target labels
CRITERIA = ("misclassified", "target-matched")


def make_criterion(name: str, classifier: Classifier, labels: np.ndarray, target_labels: np.ndarray) -> Criterion:
    if name == "misclassified":
        return Misclassified(classifier, labels)
    if name == "target-matched":
        return TargetMatched(classifier, target_labels)
    raise ValueError(f"unknown criterion {name!r} (choose from {', '.join(CRITERIA)})")


def _np(index) -> np.ndarray:
    return index.cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
