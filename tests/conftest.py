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


#: The tests' one tiny model: a seeded random 2-block timm ViT with a 3-class head (32 px: a 4×4 token grid).
TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2, "num_classes": 3}


@pytest.fixture(scope="session")
def make_tiny_vit():
    """``make_tiny_vit(seed=0, **spec options)``: the tiny ViT, or a variant of it (``img_size=64, patch_size=16``,
    ``num_classes=0`` for no head, ``depth=1``, …), built after ``torch.manual_seed(seed)``."""
    from medrep.models import load_encoder

    def make(seed: int = 0, **options):
        query = "&".join(f"{k}={v}" for k, v in {**TINY_VIT, **options}.items())
        torch.manual_seed(seed)
        return load_encoder(f"timm:vit_tiny_patch16_224?pretrained=false&{query}")

    return make


@pytest.fixture()
def tiny_vit(make_tiny_vit):
    """The tiny ViT, fresh for each test."""
    return make_tiny_vit()


@pytest.fixture(scope="module")
def vit2(make_tiny_vit):
    """The tiny ViT, shared by a module's tests."""
    return make_tiny_vit()


@pytest.fixture(scope="module")
def vit64(make_tiny_vit):
    """The tiny ViT at 64 px with 16 px patches (the same 4×4 grid)."""
    return make_tiny_vit(img_size=64, patch_size=16)


@pytest.fixture()
def no_work(monkeypatch):
    """Fail loudly if the audit itself (data, models, analyses) is ever reached."""
    import medrep.audit

    def boom(*a, **k):
        raise AssertionError("run_audit was called for an invalid config")

    monkeypatch.setattr(medrep.audit, "run_audit", boom)
