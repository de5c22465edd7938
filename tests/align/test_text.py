"""Class prompts: the modality noun read off the captions, the default templates, a prompt file, and errors."""
from __future__ import annotations

import pytest

from medrep.align.text import class_prompts, modality_noun
from medrep.errors import MedrepError


def test_prompts_default_file_and_templates(tmp_path):
    caps = ["a radiograph showing a small smooth oval benign lesion in the centre", "a radiograph of normal tissue with no lesion"]
    assert modality_noun(caps) == "radiograph"
    p = class_prompts(["normal", "benign", "malignant"], caps)
    assert len(p["benign"]) == 4 and all(s.startswith("a radiograph") for s in p["malignant"])
    assert class_prompts(["pleural_effusion"], [], templates=["a {image} of {label}"]) == {"pleural_effusion": ["a medical image of pleural effusion"]}
    f = tmp_path / "prompts.json"
    f.write_text('{"a": "an a", "b": ["one b", "two b"]}')
    assert class_prompts(["a", "b"], prompts=str(f)) == {"a": ["an a"], "b": ["one b", "two b"]}
    with pytest.raises(MedrepError, match=r"prompts.json: no prompts for class\(es\) c"):
        class_prompts(["a", "b", "c"], prompts=str(f))
    with pytest.raises(MedrepError, match="^prompt: "):
        class_prompts(["a"], templates=["no placeholder"])


class _TextEncoder:
    """A text encoder whose embedding of a caption is its length and a constant; ``nan_for`` gives NaN."""
    name, fingerprint = "fake-text", "fake-text-v1"

    def __init__(self, nan_for=()):
        self.nan_for, self.calls = set(nan_for), 0

    def encode_text(self, texts):
        import torch

        self.calls += 1
        out = torch.tensor([[float(len(t)), 1.0] for t in texts])
        for i, t in enumerate(texts):
            if t in self.nan_for:
                out[i, 0] = float("nan")
        return out


def test_text_embeddings_with_nan_are_refused_and_never_cached(tmp_path, monkeypatch):
    import numpy as np

    from medrep.align import text as text_mod
    from medrep.errors import BadInputError
    from medrep.io import save_array_checked, write_json_atomic

    monkeypatch.setattr(text_mod, "text_cache_dir", lambda: tmp_path / "text")
    texts = ["a radiograph of a benign lesion", "a radiograph of normal tissue"]
    with pytest.raises(BadInputError, match=r"^fake-text: 1 of 2 text embeddings contain NaN .*'a radiograph of normal tissue'"):
        text_mod.encode_texts_cached(_TextEncoder(nan_for={texts[1]}), texts)
    assert not list((tmp_path / "text").rglob("*.npy"))  # nothing cached
    enc = _TextEncoder()
    good = text_mod.encode_texts_cached(enc, texts)
    np.testing.assert_array_equal(good, [[31.0, 1.0], [29.0, 1.0]])
    assert text_mod.encode_texts_cached(enc, texts) is not None and enc.calls == 1  # read back from the cache
    # an entry holding a NaN (written by an older version, checksum intact) is a damaged entry: recomputed
    (npy,) = list((tmp_path / "text").rglob("*.npy"))
    digest = save_array_checked(npy, np.array([[np.nan, 1.0], [29.0, 1.0]], dtype=np.float32))
    write_json_atomic(npy.with_suffix(".json"), {"digest": digest, "rows": 2, "encoder": "fake-text"})
    again = text_mod.encode_texts_cached(enc, texts)
    np.testing.assert_array_equal(again, good)
    assert enc.calls == 2
