"""Downstream classifiers that judge an attack: the model's own head, a linear probe, a kNN.

The probe and kNN are fitted on *clean training* representations (the same representation that is
attacked), so "attacked accuracy" asks: would a classifier built on these features still be right?
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from medrep.errors import MedrepError, Param
from medrep.models.base import Encoder
from medrep.robustness.objectives import Representation

CLASSIFIERS = ("head", "probe", "knn")


class Classifier:
    name = "classifier"

    def predict(self, pixels: torch.Tensor, z: torch.Tensor | None = None) -> np.ndarray:
        """Labels for raw pixels; ``z`` (their representation) is reused when the classifier needs it."""
        raise NotImplementedError


class HeadClassifier(Classifier):
    name = "head"

    def __init__(self, encoder: Encoder):
        if not encoder.has_head:
            raise MedrepError(f"model {encoder.name} has no classification head; use probe or knn", where=Param("classifier"))
        self.encoder = encoder

    def predict(self, pixels, z=None):
        with torch.no_grad():
            return self.encoder.logits(pixels).argmax(1).cpu().numpy()


class EmbeddingClassifier(Classifier):
    """A scikit-learn classifier on the attacked representation."""

    def __init__(self, encoder: Encoder, representation: Representation, model):
        self.encoder, self.representation, self.model = encoder, representation, model

    def predict(self, pixels, z=None):
        if z is None:
            with torch.no_grad():
                z = self.representation(self.encoder, pixels)
        return self.model.predict(z.detach().float().cpu().numpy()).astype(np.int64)


def fit_probe(vectors: np.ndarray, labels: np.ndarray, seed: int = 0):
    """The linear probe of the features analysis (one implementation, so the audit's sections agree)."""
    from medrep.features.probes import LinearProbe

    return LinearProbe(seed=seed).fit(vectors, labels)


def fit_knn(vectors: np.ndarray, labels: np.ndarray, k: int = 10):
    """The cosine kNN of the features analysis (norms vary a lot between models and layers)."""
    from medrep.features.probes import KNNClassifier

    return KNNClassifier(k=min(k, len(labels))).fit(vectors, labels)


def resolve_classifiers(names: Sequence[str] | str | None, encoder: Encoder) -> list[str]:
    """``None``/"auto": the head when there is one, else probe + kNN."""
    if names is None or names == "auto":
        return ["head"] if encoder.has_head else ["probe", "knn"]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for n in names:
        if n not in CLASSIFIERS:
            raise MedrepError(f"unknown classifier {n!r} (choose from {', '.join(CLASSIFIERS)})", where=Param("classifiers"))
        if n == "head" and not encoder.has_head:
            raise MedrepError(f"model {encoder.name} has no classification head", where=Param("classifiers"))
        if n not in out:
            out.append(n)
    if not out:
        raise MedrepError("name at least one classifier", where=Param("classifiers"))
    return out
