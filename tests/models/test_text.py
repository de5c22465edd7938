"""Text encoders: MiniLM for real, sentence-transformers models, and clear errors for non-text specs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medrep.errors import MedrepError, SpecError
from medrep.models import load_text_encoder

SENTENCES = ["a chest x-ray showing pneumonia in the left lung", "lung infection visible on a radiograph",
             "a recipe for chocolate cake with strawberries"]


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm")


def test_minilm_ranks_related_sentences_above_unrelated(minilm):
    e = F.normalize(minilm.encode_text(SENTENCES), dim=-1)
    related, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
    assert related > unrelated + 0.3, (related, unrelated)
    assert minilm.dim == 384


def test_minilm_equals_sentence_transformers_on_the_same_directory(minilm, minilm_dir):
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(minilm_dir, device="cpu").encode(SENTENCES, convert_to_tensor=True)
    ours = F.normalize(minilm.encode_text(SENTENCES), dim=-1)
    torch.testing.assert_close(ours, F.normalize(ref, dim=-1), atol=1e-5, rtol=0)


def test_st_scheme_runs_the_model_pipeline(minilm, minilm_dir):
    st = load_text_encoder(f"st:{minilm_dir}")
    out = st.encode_text(SENTENCES)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3), atol=1e-5, rtol=0)  # its Normalize module ran
    torch.testing.assert_close(out, F.normalize(minilm.encode_text(SENTENCES), dim=-1), atol=1e-5, rtol=0)
    assert st.fingerprint != minilm.fingerprint  # same weights, different pipeline (normalised output)
    assert load_text_encoder(f"hf-text:{minilm_dir}").fingerprint == minilm.fingerprint


def test_batches_do_not_change_embeddings(minilm):
    whole = minilm.encode_text(SENTENCES)
    minilm.batch_size = 2  # padding differs per batch; the attention mask keeps embeddings equal
    try:
        torch.testing.assert_close(minilm.encode_text(SENTENCES), whole, atol=1e-5, rtol=1e-4)
    finally:
        minilm.batch_size = 64


@pytest.mark.parametrize("scheme", ["hf-text", "st"])
def test_vision_checkpoints_are_not_text_encoders(scheme, hf_vit_dir, hf_clip_dir, tmp_path):
    with pytest.raises(MedrepError, match="not a text encoder") as info:
        load_text_encoder(f"{scheme}:{hf_vit_dir}")
    assert info.value.where == hf_vit_dir
    with pytest.raises(MedrepError, match=f"use --text hf:{hf_clip_dir}"):
        load_text_encoder(f"{scheme}:{hf_clip_dir}")
    with pytest.raises(MedrepError, match="no such text model directory"):
        load_text_encoder(f"{scheme}:{tmp_path / 'nothing'}")


def test_image_specs_are_refused_as_text():
    with pytest.raises(SpecError, match="not a text encoder spec") as info:
        load_text_encoder("timm:resnet18")
    assert info.value.where == "text"
    with pytest.raises(SpecError, match="no encode_text"):
        load_text_encoder(torch.nn.Linear(2, 2))
