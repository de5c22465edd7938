"""A Hugging Face folder whose weights are a pickle that is not weights-only (``pytorch_model.bin`` holding
an object that runs code): one line naming the file, exit code 2, no traceback, and the code never runs."""
from __future__ import annotations

import os
import shutil

import pytest
import torch

from medrep.errors import MedrepError


class _Payload:
    def __init__(self, flag):
        self.flag = str(flag)

    def __reduce__(self):
        return (open, (self.flag, "w"))


def _pickled_copy(folder, tmp_path, flag):
    """``folder`` with its model.safetensors replaced by a pytorch_model.bin that carries a payload."""
    from safetensors.torch import load_file

    out = tmp_path / "pickled"
    shutil.copytree(folder, out)
    state = dict(load_file(str(out / "model.safetensors")))
    (out / "model.safetensors").unlink()
    state["payload"] = _Payload(flag)
    torch.save(state, out / "pytorch_model.bin")
    return out


def test_pickled_image_model_is_refused_by_the_command(hf_vit_dir, tmp_path, capsys):
    from medrep.cli import main

    flag = tmp_path / "pwned"
    folder = _pickled_copy(hf_vit_dir, tmp_path, flag)
    rc = main(["extract", "--model", f"hf:{folder}", "--data", "demo?n_train=4&n_val=0&n_test=4&size=32",
               "--out", str(tmp_path / "out"), "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{folder / 'pytorch_model.bin'}: refused to load" in err
    assert "only safetensors or weights-only checkpoints are loaded" in err
    assert not flag.exists() and not os.path.exists(flag)


def test_pickled_text_model_is_refused(text_tokenizer, tmp_path):
    from transformers import BertConfig, BertModel

    from medrep.models import load_text_encoder

    plain = tmp_path / "bert"
    tok = text_tokenizer
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, max_position_embeddings=32)
    BertModel(config).save_pretrained(plain)
    text_tokenizer.save_pretrained(plain)
    flag = tmp_path / "pwned"
    folder = _pickled_copy(plain, tmp_path, flag)
    with pytest.raises(MedrepError, match="only safetensors or weights-only checkpoints are loaded") as info:
        load_text_encoder(f"hf-text:{folder}")
    assert info.value.where == str(folder / "pytorch_model.bin")
    assert not flag.exists()
