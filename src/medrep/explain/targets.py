"""What an explanation explains: a class logit (models with a head) or the similarity of the image's
embedding to a reference embedding (a class centroid, a text prompt's embedding) for encoders without one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medrep.errors import MedrepError, Param
from medrep.models.base import Encoder

TARGET_KINDS = ("class", "embedding")


@dataclass
class Target:
    """Per-sample target of a batch.

    ``kind="class"``: ``classes`` (B,) long, or None for the predicted class.
    ``kind="embedding"``: ``references`` (B, D), the embedding each image's representation is compared with
    (cosine similarity).
    """

    kind: str = "class"
    classes: torch.Tensor | None = None
    references: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise MedrepError(f"unknown target {self.kind!r} (choose {', '.join(TARGET_KINDS)})", where=Param("explain_target"))
        if self.kind == "embedding" and self.references is None:
            raise MedrepError("an embedding target needs reference embeddings (class centroids or a text embedding)",
                              where=Param("explain_target"))

    def index(self, sl: slice | torch.Tensor) -> "Target":
        """The target of a sub-batch (rows ``sl``)."""
        return Target(self.kind, None if self.classes is None else self.classes[sl],
                      None if self.references is None else self.references[sl])

    def repeat_interleave(self, n: int) -> "Target":
        """Each sample's target repeated ``n`` times (for IG steps, deletion curves)."""
        return Target(self.kind, None if self.classes is None else self.classes.repeat_interleave(n, 0),
                      None if self.references is None else self.references.repeat_interleave(n, 0))


def class_target(classes: torch.Tensor | None = None) -> Target:
    return Target("class", classes=classes)


def embedding_target(references: torch.Tensor) -> Target:
    return Target("embedding", references=references)


def model_output(encoder: Encoder, pixels: torch.Tensor, target: Target) -> torch.Tensor:
    """Logits (B, K) for class targets, embeddings (B, D) for embedding targets."""
    if target.kind == "class":
        if not encoder.has_head:
            raise MedrepError(f"model {encoder.name} has no classification head; use --explain-target embedding", where=Param("explain_target"))
        return encoder.logits(pixels)
    return encoder.embed(pixels)


def score_from_output(out: torch.Tensor, target: Target, probability: bool = False) -> torch.Tensor:
    """(B,) target score from :func:`model_output`: the class logit (or softmax probability) or the cosine
    similarity to the reference embedding."""
    if target.kind == "class":
        classes = target.classes
        if classes is None:
            classes = out.detach().argmax(-1)
        classes = classes.to(out.device).long()
        if classes.shape[0] != out.shape[0]:
            raise MedrepError(f"{classes.shape[0]} target classes for a batch of {out.shape[0]}", where=Param("explain_target"))
        if int(classes.max()) >= out.shape[-1] or int(classes.min()) < 0:
            raise MedrepError(f"target class out of range for a {out.shape[-1]}-class head", where=Param("explain_target"))
        vals = out.softmax(-1) if probability else out
        return vals.gather(1, classes[:, None])[:, 0]
    ref = target.references.to(out.device, out.dtype)
    if ref.shape[-1] != out.shape[-1]:
        raise MedrepError(f"reference embeddings have width {ref.shape[-1]}, the model's {out.shape[-1]}", where=Param("explain_target"))
    return F.cosine_similarity(out, ref, dim=-1)


def target_score(encoder: Encoder, pixels: torch.Tensor, target: Target, probability: bool = False) -> torch.Tensor:
    return score_from_output(model_output(encoder, pixels, target), target, probability)


def resolve_classes(encoder: Encoder, pixels: torch.Tensor, target: Target) -> Target:
    """Fix the predicted class once, so every method of a batch explains the same class."""
    if target.kind != "class" or target.classes is not None:
        return target
    with torch.no_grad():
        pred = model_output(encoder, pixels, target).argmax(-1)
    return Target("class", classes=pred)
