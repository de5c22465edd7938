"""The head is used only when its outputs are the data's classes: demo models on a fundus-like two-class set and
an ImageNet-head timm model on the phantoms fall back to the probe and kNN, say so, and refuse an explicit
``--classifiers head`` with both class lists."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medrep.cli import main
from medrep.models import load_encoder

PHANTOM_CLASSES = ["normal", "benign", "malignant"]
IMAGENET_HEAD = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=1"


@pytest.fixture(scope="module")
def fundus_set(tmp_path_factory):
    """ROOT/{train,test}/{healthy,retinopathy}/*.png: skimage's retina photograph, shifted, flipped and dimmed;
    the 'retinopathy' copies carry a few dark-red spots."""
    from skimage import data, transform

    root = tmp_path_factory.mktemp("fundus")
    base = transform.resize(data.retina(), (64, 64), anti_aliasing=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 4)):
        for label in ("healthy", "retinopathy"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.roll(base, tuple(rng.integers(-4, 5, 2)), axis=(0, 1)) * rng.uniform(0.8, 1.1)
                img = img[:, ::-1] if i % 2 else img
                if label == "retinopathy":
                    for y, x in rng.integers(16, 48, (4, 2)):
                        img[y - 2:y + 2, x - 2:x + 2] = (0.35, 0.05, 0.05)
                Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return str(root)


def test_head_fit_compares_outputs_and_names():
    vit = load_encoder("demo-vit")
    assert vit.head_fit(PHANTOM_CLASSES).fits
    assert vit.head_fit(["Normal", "benign", "Malignant"]).fits  # case does not matter
    wrong_order = vit.head_fit(["benign", "normal", "malignant"])
    assert not wrong_order.fits and "in order" in wrong_order.reason
    two = vit.head_fit(["healthy", "retinopathy"])
    assert not two.fits and "3 outputs" in two.reason and "healthy" in two.reason and "malignant" in two.reason
    imagenet = load_encoder(IMAGENET_HEAD)
    assert imagenet.num_classes == 1000 and not imagenet.head_fit(PHANTOM_CLASSES).fits
    sized = load_encoder(IMAGENET_HEAD + "&num_classes=3")  # the user sized the head for the data
    assert sized.head_fit(PHANTOM_CLASSES).fits
    sized.declare_head_classes(["a", "b", "c"])
    assert not sized.head_fit(PHANTOM_CLASSES).fits
    sized.declare_head_classes(PHANTOM_CLASSES)
    assert sized.head_fit(PHANTOM_CLASSES).fits


def _attack(capsys, tmp_path, model, data, *extra):
    code = main(["attack", "--model", model, "--data", data, "--attack-steps", "2", "--eps", "4/255", "--limit", "4",
                 "--noise-sigma", "0.01", "--noise-draws", "2", "--batch-size", "8", "--quiet", "--out", str(tmp_path), *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("model", ["demo-vit", "demo-cnn"])
def test_demo_models_on_a_fundus_set_use_the_probe(model, fundus_set, tmp_path, capsys):
    code, text = _attack(capsys, tmp_path / "auto", model, fundus_set)
    assert code == 0, text
    assert text.count("is not used") == 1 and "['healthy', 'retinopathy']" not in text
    assert "the head has 3 outputs [normal, benign, malignant], the data 2 classes [healthy, retinopathy]" in text
    results = json.loads((tmp_path / "auto" / "results.json").read_text())
    assert results["classifiers"] == ["probe", "knn"] and results["primary_classifier"] == "probe"
    assert results["head"]["fits"] is False and results["head"]["data_classes"] == ["healthy", "retinopathy"]

    code, text = _attack(capsys, tmp_path / "head", model, fundus_set, "--classifiers", "head")
    assert code == 2 and "Traceback" not in text
    assert "--classifiers" in text and "normal, benign, malignant" in text and "healthy, retinopathy" in text


def test_an_imagenet_head_on_the_phantoms_uses_the_probe(tmp_path, capsys):
    code, text = _attack(capsys, tmp_path, IMAGENET_HEAD, "demo?n_train=12&n_val=0&n_test=6&size=32")
    assert code == 0, text
    assert "the head has 1000 outputs" in text and "is not used" in text
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["primary_classifier"] == "probe" and results["head"]["outputs"] == 1000


def test_explain_refuses_the_class_target_of_a_head_that_does_not_fit(fundus_set, tmp_path, capsys):
    from medrep.data import load_dataset
    from medrep.errors import MedrepError
    from medrep.explain.run import run_explain

    with pytest.raises(MedrepError, match="does not fit the data.*--explain-target embedding"):
        run_explain(load_encoder("demo-cnn"), load_dataset(fundus_set).split("test"), methods=["gradcam"])
