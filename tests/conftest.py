"""Shared fixtures.  Every test runs offline, on CPU, with its own embedding cache."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MEDREP_QUIET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import medrep  # noqa: E402,F401  (repairs torchvision before timm is imported)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("medrep-cache")
    old = os.environ.get("MEDREP_CACHE")
    os.environ["MEDREP_CACHE"] = str(root)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield root
    if old is None:
        os.environ.pop("MEDREP_CACHE", None)
    else:
        os.environ["MEDREP_CACHE"] = old


@pytest.fixture(scope="session")
def phantoms():
    """The default phantom dataset (train 3000 / val 600 / test 600 at 64 px)."""
    from medrep.data.phantoms import load_phantoms

    return load_phantoms()


@pytest.fixture(scope="session")
def small_phantoms():
    from medrep.data.phantoms import PhantomConfig, load_phantoms

    return load_phantoms(PhantomConfig(n_train=120, n_val=0, n_test=60, seed=3))


@pytest.fixture(scope="session")
def demo_vit():
    from medrep.models import load_encoder

    return load_encoder("demo-vit")


@pytest.fixture(scope="session")
def demo_cnn():
    from medrep.models import load_encoder

    return load_encoder("demo-cnn")


@pytest.fixture()
def tiny_vit():
    """A 2-block timm ViT at 32 px with an 4×4 grid and a 3-class head, seeded random weights."""
    from medrep.models import load_encoder

    torch.manual_seed(0)
    return load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3")
