"""How images reach a model's input size: ``stretch`` (the default) and ``crop`` (timm / torchvision's
evaluation transform), checked against torchvision's own resize + centre crop and hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from medrep.data.base import Item, TensorDataset, collate, resize_item
from medrep.errors import MedrepError
from medrep.features.extract import extract_embeddings
from medrep.geometry import fit_to_size
from medrep.models import Preprocessing, load_encoder
from medrep.models.hf_adapter import processor_crop_pct

MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


@pytest.mark.parametrize("shape", [(300, 400), (400, 300), (150, 120), (224, 260)])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_crop_equals_torchvision_resize_then_center_crop(shape, interpolation):
    x = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(0))
    ours = fit_to_size(x, (224, 224), interpolation, resize="crop", crop_pct=0.875)
    ref = TF.center_crop(TF.resize(x, 256, interpolation=MODES[interpolation], antialias=True), [224, 224])
    assert ours.shape == (2, 3, 224, 224)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def test_an_image_already_at_the_input_size_is_not_zoomed():
    x = torch.rand(1, 3, 224, 224)  # timm would zoom it by 1/0.875; medrep keeps fitting idempotent
    assert torch.equal(fit_to_size(x, (224, 224), "bicubic", resize="crop", crop_pct=0.875), x)


def test_crop_to_a_non_square_size_covers_it_and_crops_the_centre():
    x = torch.rand(1, 1, 100, 100)
    ours = fit_to_size(x, (32, 48), "bilinear", resize="crop", crop_pct=1.0)
    # cover (32, 48) keeping the aspect ratio → 48 × 48, then rows 8..40 of it
    ref = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(ours, ref[..., 8:40, :], atol=0, rtol=0)


def test_stretch_is_the_default_and_leaves_cache_keys_as_they_were():
    p = Preprocessing((8, 8), (0.5,), (0.5,), channels=1)
    assert p.resize == "stretch" and "resize" not in p.to_dict() and "crop_pct" not in p.to_dict()
    c = Preprocessing((8, 8), (0.5,), (0.5,), channels=1, resize="crop", crop_pct=0.9)
    assert c.to_dict()["resize"] == "crop" and c.to_dict()["crop_pct"] == 0.9
    x = torch.rand(1, 1, 10, 20)
    ref = torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(p(x), (ref - 0.5) / 0.5)
    with pytest.raises(MedrepError, match="resize mode"):
        Preprocessing((8, 8), (0.5,), (0.5,), channels=1, resize="zoom")
    with pytest.raises(MedrepError, match="crop_pct"):
        Preprocessing((8, 8), (0.5,), (0.5,), channels=1, resize="crop", crop_pct=0.0)


def test_masks_follow_their_images_through_the_crop():
    mask = np.zeros((60, 90), dtype=bool)
    mask[20:35, 10:70] = True
    image = torch.from_numpy(mask).float()[None]  # the image *is* the mask: both must come out identical
    item = Item(id="a", image=image, label=0, mask=torch.from_numpy(mask))
    out = resize_item(item, (32, 32), "nearest", resize="crop", crop_pct=0.8)
    assert out.image.shape == (1, 32, 32) and out.mask.shape == (32, 32) and out.mask.dtype == torch.bool
    assert torch.equal(out.image[0] > 0.5, out.mask)
    batch = collate([item, item], size=(32, 32), interpolation="nearest", resize="crop", crop_pct=0.8)
    assert torch.equal(batch["mask"][1], out.mask)


def test_spec_option_crops_like_torchvision_for_a_timm_model_and_changes_the_fingerprint():
    stretch = load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&num_classes=0")
    crop = load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&num_classes=0&resize=crop")
    crop.module.load_state_dict(stretch.module.state_dict())
    assert crop.preprocessing.crop_pct == pytest.approx(0.9)  # timm's own crop_pct for this model
    assert crop.fingerprint != stretch.fingerprint
    x = torch.rand(3, 3, 40, 60)
    ref = TF.center_crop(TF.resize(x, int(32 / 0.9), interpolation=InterpolationMode.BICUBIC, antialias=True), [32, 32])
    with torch.no_grad():
        torch.testing.assert_close(crop.embed(x), stretch.embed(ref), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(stretch.embed(x), crop.embed(x), atol=1e-3)
    with pytest.raises(MedrepError, match=r"\?resize"):
        load_encoder("timm:vit_tiny_patch16_224?pretrained=false&resize=zoom")
    with pytest.raises(MedrepError, match=r"\?crop_pct"):
        load_encoder("timm:vit_tiny_patch16_224?pretrained=false&resize=crop&crop_pct=abc")


def test_extraction_uses_the_same_crop_and_fitting_is_idempotent():
    images = torch.rand(6, 1, 80, 100, generator=torch.Generator().manual_seed(1))
    data = TensorDataset(images, [0, 1, 2, 0, 1, 2], ["normal", "benign", "malignant"])
    enc = load_encoder("demo-cnn?resize=crop&crop_pct=0.75")
    got = extract_embeddings(enc, data, batch_size=4, cache=None).vectors
    ref = TF.center_crop(TF.resize(images, int(64 / 0.75), antialias=True), [64, 64])
    with torch.no_grad():
        np.testing.assert_allclose(got, load_encoder("demo-cnn").embed(ref).numpy(), atol=1e-5)
        # an image already at the input size is used as it is: the loader's fit is not cropped again
        np.testing.assert_allclose(enc.embed(ref).numpy(), got, atol=1e-5)
    fitted = fit_to_size(images, (64, 64), resize="crop", crop_pct=0.75)
    assert torch.equal(fit_to_size(fitted, (64, 64), resize="crop", crop_pct=0.75), fitted)


def test_hf_processor_crop_pct():
    assert processor_crop_pct({"do_center_crop": True, "crop_size": {"height": 224, "width": 224},
                               "size": {"shortest_edge": 256}}) == pytest.approx(0.875)
    assert processor_crop_pct({"do_center_crop": True, "crop_size": 224, "size": 224}) == 1.0
    assert processor_crop_pct({"do_center_crop": False, "crop_size": 224, "size": 256}) == 1.0
    assert processor_crop_pct(None) == 1.0
