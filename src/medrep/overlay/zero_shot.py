"""Zero-shot scorers for the overlay test: a model's own text tower, or a text encoder the caller declares
to share the image space (CLIP-style cosine to class prompts)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from medrep.errors import MedrepError
from medrep.features.neighbours import l2_normalise
from medrep.overlay.config import DEFAULT_PROMPT

ZeroShotFn = Callable[[np.ndarray], np.ndarray]


def softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def text_tower_zero_shot(encode_text: Callable[[list[str]], Any], class_names: Sequence[str],
                         template: str = DEFAULT_PROMPT, scale: float = 100.0) -> ZeroShotFn:
    """CLIP-style zero-shot: cosine to each class prompt's text embedding, times CLIP's logit scale."""
    from medrep.vocabulary import format_prompt

    with torch.inference_mode():
        t = encode_text([format_prompt(template, c) for c in class_names])
    text = l2_normalise(t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t))

    def scores(embeddings: np.ndarray) -> np.ndarray:
        if embeddings.shape[1] != text.shape[1]:
            raise MedrepError(f"image embeddings have width {embeddings.shape[1]} but the text embeddings {text.shape[1]}; "
                              "they are not in one space (align them first: medrep.align)", where="zero-shot")
        return scale * l2_normalise(embeddings) @ text.T

    return scores


def _encoder_text_fn(encoder) -> Callable[[list[str]], Any] | None:
    tower = getattr(encoder, "text_encoder", None)
    if tower is not None:
        return tower.encode_text if hasattr(tower, "encode_text") else tower
    fn = getattr(encoder, "encode_text", None)
    return fn if callable(fn) else None


def resolve_zero_shot(encoder, classes: Sequence[str], zero_shot: ZeroShotFn | Mapping[str, ZeroShotFn] | None,
                      text_encoder=None, template: str = DEFAULT_PROMPT,
                      text_aligned: bool = False) -> tuple[ZeroShotFn | None, str]:
    """The zero-shot scorer for one encoder and where it came from (a note for the report).

    A separate ``text_encoder`` is used only with ``text_aligned=True``, the caller's statement that
    it was trained into this image space (e.g. the text tower of the same CLIP): equal widths alone
    say nothing, two unrelated 384-d spaces give meaningless cosines.
    """
    if isinstance(zero_shot, Mapping):
        if encoder.name in zero_shot:
            return zero_shot[encoder.name], "given scorer"
    elif zero_shot is not None:
        return zero_shot, "given scorer"
    own = _encoder_text_fn(encoder)
    if own is not None:
        return text_tower_zero_shot(own, classes, template), "the model's own text tower"
    if text_encoder is not None:
        if not text_aligned:
            return None, ("none: the model has no text tower and the given text encoder is not declared to share its "
                          "image space (pass --text-aligned / text_aligned=True if it does, or an aligned scorer from "
                          "medrep.align)")
        dim = getattr(text_encoder, "embed_dim", None) or getattr(text_encoder, "dim", None)
        width = getattr(encoder, "embed_dim", None)
        if dim is not None and width is not None and dim != width:
            return None, (f"none: the text encoder is declared aligned but its width ({dim}) differs from the image "
                          f"embeddings' ({width})")
        fn = text_encoder.encode_text if hasattr(text_encoder, "encode_text") else text_encoder
        return text_tower_zero_shot(fn, classes, template), "the given text encoder (declared aligned)"
    return None, "none: the model has no text tower and no aligned scorer was given"
