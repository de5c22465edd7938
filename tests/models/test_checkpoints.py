"""Local checkpoints: safetensors and weights-only .pth reproduce the model; a code-running pickle is refused."""
from __future__ import annotations

import os

import pytest
import torch

from medrep.errors import MedrepError
from medrep.models import load_encoder
from medrep.models.checkpoints import load_state_dict

ARCH = "vit_tiny_patch16_224"
OPTS = "img_size=32&patch_size=8&depth=2&num_classes=3"


@pytest.fixture(scope="module")
def saved_timm(tmp_path_factory):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(11)
    model = timm.create_model(ARCH, pretrained=False, img_size=32, patch_size=8, depth=2, num_classes=3).eval()
    root = tmp_path_factory.mktemp("timm")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(root / "tiny.safetensors"))
    torch.save({"state_dict": state, "epoch": 3}, root / "tiny.pth")  # a training-style checkpoint
    return model, root


def _same_model(enc, model, pixels):
    x = (pixels - 0.5) / 0.5  # vit_tiny's timm config: mean = std = 0.5
    with torch.no_grad():
        torch.testing.assert_close(enc.logits(pixels), model(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.embed(pixels), model.forward_features(x)[:, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_timm_spec_with_local_weights(saved_timm, pixels, fmt):
    model, root = saved_timm
    path = root / f"tiny.{fmt}"
    if fmt == "pth":
        # timm reads a flat state dict; the nested training checkpoint goes through medrep's reader
        torch.save(load_state_dict(path), root / "flat.pth")
        path = root / "flat.pth"
    _same_model(load_encoder(f"timm:{ARCH}@{path}?{OPTS}"), model, pixels)


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_bare_checkpoint_path_with_arch(saved_timm, pixels, fmt):
    model, root = saved_timm
    enc = load_encoder(f"{root / f'tiny.{fmt}'}?arch=timm:{ARCH}&{OPTS}")
    _same_model(enc, model, pixels)
    assert enc.source["weights"] == str(root / f"tiny.{fmt}")


class _Payload:
    """Unpickling this object would create ``flag`` on disk: proof that code ran."""

    def __init__(self, flag):
        self.flag = str(flag)

    def __reduce__(self):
        return (open, (self.flag, "w"))


@pytest.fixture()
def malicious(tmp_path, saved_timm):
    _, root = saved_timm
    flag = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    state = dict(load_state_dict(root / "tiny.safetensors"))
    state["payload"] = _Payload(flag)
    torch.save(state, path)
    return path, flag


def test_code_running_pickle_is_refused_and_never_executed(malicious):
    path, flag = malicious
    with pytest.raises(MedrepError, match="refused") as info:
        load_state_dict(path)
    assert info.value.where == str(path)
    with pytest.raises(MedrepError) as info:
        load_encoder(f"{path}?arch=timm:{ARCH}&{OPTS}")
    assert info.value.where == str(path)
    with pytest.raises(MedrepError):  # timm's own loader (weights_only=True) refuses it too
        load_encoder(f"timm:{ARCH}@{path}?{OPTS}")
    assert not flag.exists() and not os.path.exists(flag)


def test_bad_checkpoint_inputs_name_the_file(tmp_path, hf_vit_dir):
    junk = tmp_path / "weights.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(MedrepError, match="not a valid safetensors") as info:
        load_encoder(f"{junk}?arch=timm:{ARCH}")
    assert info.value.where == str(junk)
    with pytest.raises(MedrepError, match="needs its architecture") as info:
        load_encoder(str(junk))
    assert info.value.where == str(junk)
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(MedrepError, match="unsupported weights format") as info:
        load_encoder(f"{ckpt}?arch=timm:{ARCH}")
    assert info.value.where == str(ckpt)
    with pytest.raises(MedrepError, match="neither config.json"):
        load_encoder(str(tmp_path))
    with pytest.raises(MedrepError, match="arch must be") as info:
        load_encoder(f"{junk}?arch=resnet18")
    assert info.value.where == "arch"


def test_bare_hf_directory_is_a_hugging_face_checkpoint(hf_vit_dir):
    enc = load_encoder(hf_vit_dir)
    assert type(enc).__name__ == "HFEncoder" and enc.has_head
