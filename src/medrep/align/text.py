"""Text side of alignment: cached caption embeddings, captions from datasets, class prompts."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medrep.errors import BadInputError, MedrepError, Param
from medrep.vocabulary import format_prompt
from medrep.io import digest_json, load_array_checked, save_array_checked


def text_cache_dir() -> Path:
    from medrep.embeddings.cache import default_cache_dir

    return default_cache_dir().parent / "text"


def encode_texts_cached(text_encoder: Any, texts: Sequence[str], cache: bool = True, batch_size: int = 256) -> np.ndarray:
    """(N, D) float32 text embeddings, keyed by the encoder's fingerprint and the exact strings."""
    texts = list(texts)
    key = digest_json({"encoder": text_encoder.fingerprint, "texts": texts, "v": 1})
    path = text_cache_dir() / key[:2] / f"{key}.npy"
    record = path.with_suffix(".json")
    if cache and path.exists() and record.exists():
        try:
            cached = load_array_checked(path, json.loads(record.read_text())["digest"])
            if np.isfinite(cached).all():  # only finite embeddings are cached: anything else is a damaged entry
                return cached
        except (MedrepError, ValueError, KeyError):
            pass
        path.unlink(missing_ok=True)  # damaged entry: recompute below
    from medrep.progress import progress_bar

    parts = []
    with progress_bar(f"encoding text with {getattr(text_encoder, 'name', 'text encoder')}", len(texts)) as bar:
        for i in range(0, len(texts), batch_size):
            chunk = texts[i : i + batch_size]
            parts.append(np.asarray(text_encoder.encode_text(chunk).detach().float().cpu().numpy(), dtype=np.float32))
            bar.advance(len(chunk))
    out = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    bad = ~np.isfinite(out.reshape(len(texts), -1)).all(axis=1) if len(texts) else np.zeros(0, dtype=bool)
    if bad.any():  # refused, never cached: a NaN would otherwise flow silently into every alignment figure
        first = "; ".join(repr(texts[i][:60]) for i in np.flatnonzero(bad)[:3])
        raise BadInputError(f"{int(bad.sum())} of {len(texts)} text embeddings contain NaN or infinite values "
                            f"(first: {first})", where=getattr(text_encoder, "name", "text encoder"))
    if cache:
        from medrep.io import write_json_atomic

        digest = save_array_checked(path, out)
        write_json_atomic(record, {"digest": digest, "rows": len(texts), "encoder": getattr(text_encoder, "name", "")})
    return out


def dataset_captions(dataset: Any) -> list[str]:
    """Every item's caption, without decoding images where the dataset keeps captions in a list."""
    from medrep.data.base import Subset

    if isinstance(dataset, Subset):
        parent = dataset_captions(dataset.parent)
        return [parent[i] for i in dataset.indices]
    caps = getattr(dataset, "captions", None)
    if caps is None:
        if hasattr(dataset, "parts"):
            caps = [c for p in dataset.parts.values() for c in dataset_captions(p)]
        else:
            caps = [item.caption for item in dataset]
    missing = [i for i, c in enumerate(caps) if not c]
    if missing:
        ids = dataset.ids
        raise MedrepError(f"{len(missing)} items have no caption (first: {', '.join(ids[i] for i in missing[:3])}); "
                          "zero-shot anchors are image–caption pairs — give the CSV manifest a caption column",
                          where=getattr(dataset, "name", Param("data")))
    return list(caps)


# Prompt ensembles written the way the phantom captions describe each class; {image} is the modality noun.
PHANTOM_PROMPTS: dict[str, list[str]] = {
    "normal": ["a {image} of normal tissue with no lesion", "a {image} of healthy tissue with no lesion",
               "a {image} of normal tissue", "a {image} showing no lesion"],
    "benign": ["a {image} showing a smooth oval benign lesion", "a {image} showing a small smooth oval benign lesion",
               "a {image} showing a large smooth oval benign lesion", "a {image} showing a benign lesion"],
    "malignant": ["a {image} showing an irregular spiculated malignant lesion",
                  "a {image} showing a small irregular spiculated malignant lesion",
                  "a {image} showing a large irregular spiculated malignant lesion", "a {image} showing a malignant lesion"],
}
DEFAULT_TEMPLATES = ["a {image} of {label}", "a {image} showing {label}", "a medical image of {label}", "{label}"]


def modality_noun(captions: Sequence[str]) -> str:
    """'radiograph' from 'a radiograph showing …' — the most common noun phrase captions open with."""
    found = [m.group(1) for c in captions if (m := re.match(r"^an? (.+?) (?:of|showing|with) ", c or ""))]
    return Counter(found).most_common(1)[0][0] if found else "medical image"


def class_prompts(classes: Sequence[str], captions: Sequence[str] = (), prompts: str | dict | None = None,
                  templates: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Prompt ensemble per class.

    ``prompts``: a JSON file or dict {class: prompt | [prompts]} (every class must appear); otherwise
    ``templates`` with ``{label}`` (class name, underscores as spaces) and ``{image}``; otherwise the phantom
    ensembles when the classes are normal/benign/malignant, else :data:`DEFAULT_TEMPLATES`.
    """
    image = modality_noun(captions)
    if prompts is not None:
        where = str(prompts) if not isinstance(prompts, dict) else "prompts"
        if not isinstance(prompts, dict):
            try:
                prompts = json.loads(Path(prompts).read_text())
            except FileNotFoundError:
                raise MedrepError("no such prompts file", where=where) from None
            except ValueError as err:
                raise MedrepError(f"not valid JSON ({err})", where=where) from None
        if not isinstance(prompts, dict):
            raise MedrepError("expected a JSON object {class: prompt or [prompts]}", where=where)
        missing = [c for c in classes if c not in prompts]
        if missing:
            raise MedrepError(f"no prompts for class(es) {', '.join(missing)}", where=where)
        out = {}
        for c in classes:
            p = prompts[c]
            p = [p] if isinstance(p, str) else list(p)
            if not p or not all(isinstance(s, str) and s.strip() for s in p):
                raise MedrepError(f"class {c!r} needs one or more non-empty prompt strings", where=where)
            out[c] = [format_prompt(s, c.replace("_", " "), where=where, require_label=False, image=image) if "{" in s else s for s in p]
        return out
    if templates:
        return {c: [format_prompt(t, c.replace("_", " "), where=Param("prompt"), image=image) for t in templates] for c in classes}
    if sorted(classes) == sorted(PHANTOM_PROMPTS):
        return {c: [p.format(image=image) for p in PHANTOM_PROMPTS[c]] for c in classes}
    return {c: [format_prompt(t, c.replace("_", " "), image=image) for t in DEFAULT_TEMPLATES] for c in classes}
