"""Text overlays: the overlay report against independent computations, and the
confounder shortcut made visible."""
import numpy as np
import pytest
import torch
from torch import nn

from medrep.data.base import SplitDataset, TensorDataset
from medrep.errors import MedrepError
from medrep.overlay import OverlayDataset, TextOverlay, run_overlay
from medrep.overlay.zero_shot import softmax
from medrep.models import load_encoder
from medrep.models.base import Preprocessing


def _corner_encoder(name, use_corner):
    class Features(nn.Module):
        def __init__(self):
            super().__init__()
            # a distinct weight, so the two encoders get distinct fingerprints (cache keys)
            self.scale = nn.Parameter(torch.tensor(2.0 if use_corner else 1.0))

        def forward(self, x):
            centre = x[:, 0, 16:48, 16:48].flatten(1)
            feats = [centre.mean(1), centre.std(1), centre.amax(1)]
            if use_corner:
                feats.append(4 * x[:, 0, :12, 52:].flatten(1).amax(1))  # where the confounder tag sits
            return self.scale * torch.stack(feats, 1)

    return load_encoder(Features(), preprocessing=Preprocessing((64, 64), (0.0,), (1.0,), 1), name=name)


@pytest.fixture(scope="module")
def confounded():
    from medrep.data.phantoms import PhantomConfig, load_phantoms

    return load_phantoms(PhantomConfig(n_train=150, n_val=0, n_test=60, seed=5, confounder_rate=0.95))


def test_overlay_reveals_the_confounder_shortcut(confounded):
    shortcut, honest = _corner_encoder("corner-reader", True), _corner_encoder("centre-only", False)
    res = run_overlay([shortcut, honest], confounded, words=["R"], word_class={"R": "malignant"}, font_size=0.16,
                      position="top-right", margin=0.02, k=5, n_boot=200)
    s, h = res.models["corner-reader"]["words"]["R"], res.models["centre-only"]["words"]["R"]
    # the corner-reading model's probe learned "tag ⇒ malignant": writing the tag moves predictions there
    assert s["target_class"] == "malignant"
    assert s["metrics"]["probe_to_target_rate"].value > 0.5
    assert s["probe_flips_to"]["malignant"] == sum(s["probe_flips_to"].values())
    # the model that never looks at the corner does not move at all
    assert h["metrics"]["cosine_shift"].value == pytest.approx(0.0, abs=1e-6)
    assert h["metrics"]["probe_flip_rate"].value == 0.0
    d = res.to_dict()
    assert d["models"]["corner-reader"]["words"]["R"]["probe_to_target_rate"]["value"] > 0.5


def _tiny_split_data():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(60, 1, 32, 32, generator=g) * 0.5
    labels = np.arange(60) % 3
    imgs[labels == 1, :, 8:24, 8:24] += 0.4  # class 1 brighter in the middle, class 2 darker
    imgs[labels == 2, :, 8:24, 8:24] *= 0.3
    parts = {"train": TensorDataset(imgs[:40], labels[:40], ["normal", "benign", "malignant"], name="t-train"),
             "test": TensorDataset(imgs[40:], labels[40:], ["normal", "benign", "malignant"], name="t-test")}
    return SplitDataset(parts, "tiny")


def test_zero_shot_shift_with_hand_made_scorer(tiny_vit):
    ds = _tiny_split_data()
    w = np.random.default_rng(0).normal(size=(tiny_vit.embed_dim, 3)) * 0.2

    def scorer(e):
        return e @ w

    res = run_overlay([tiny_vit], ds, words=["benign"], zero_shot=scorer, font_size=0.3, k=3, n_boot=100)
    m = res.models[tiny_vit.name]["words"]["benign"]["metrics"]
    # independent computation: overlay the pixels directly, embed, score
    test = ds.split("test")
    clean = torch.stack([test[i].image for i in range(len(test))])
    over = TextOverlay("benign", size=0.3).apply(clean)
    with torch.inference_mode():
        e_clean, e_over = tiny_vit.embed(clean).numpy(), tiny_vit.embed(over).numpy()
    p_clean, p_over = softmax(e_clean @ w), softmax(e_over @ w)
    assert m["zero_shot_shift"].value == pytest.approx(float(np.mean(p_over[:, 1] - p_clean[:, 1])), abs=1e-5)
    cos = (e_clean * e_over).sum(1) / np.linalg.norm(e_clean, axis=1) / np.linalg.norm(e_over, axis=1)
    assert m["cosine_shift"].value == pytest.approx(float(np.mean(1 - cos)), abs=1e-5)
    assert res.models[tiny_vit.name]["zero_shot"] == "given scorer"
    # a scorer of the wrong shape is refused with a message naming it
    with pytest.raises(MedrepError, match="zero-shot"):
        run_overlay([tiny_vit], ds, words=["benign"], zero_shot=lambda e: e[:, :2], k=3, n_boot=10)


class _FixedText:
    """A text encoder of a chosen width whose class prompts embed as fixed random vectors."""

    def __init__(self, dim, name="fixed-text"):
        self.dim, self.name = dim, name
        self.table = torch.from_numpy(np.random.default_rng(1).normal(size=(8, dim)).astype("f4"))

    def encode_text(self, texts):
        return self.table[:len(texts)]


def test_zero_shot_needs_a_text_encoder_declared_aligned_not_just_the_same_width(tiny_vit):
    from medrep.overlay.zero_shot import resolve_zero_shot

    classes = ["normal", "benign", "malignant"]
    same_width = _FixedText(tiny_vit.embed_dim)
    fn, note = resolve_zero_shot(tiny_vit, classes, None, text_encoder=same_width)
    assert fn is None and "not declared to share its image space" in note and "--text-aligned" in note
    fn, note = resolve_zero_shot(tiny_vit, classes, None, text_encoder=same_width, text_aligned=True)
    assert note == "the given text encoder (declared aligned)"
    e = np.random.default_rng(2).normal(size=(5, tiny_vit.embed_dim))
    expected = 100 * (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (
        same_width.table[:3].numpy() / np.linalg.norm(same_width.table[:3].numpy(), axis=1, keepdims=True)).T
    np.testing.assert_allclose(fn(e), expected, rtol=1e-4)
    # declared aligned, yet of another width: declined with the two widths named
    fn, note = resolve_zero_shot(tiny_vit, classes, None, text_encoder=_FixedText(tiny_vit.embed_dim + 1),
                                 text_aligned=True)
    assert fn is None and f"({tiny_vit.embed_dim + 1}) differs from the image embeddings' ({tiny_vit.embed_dim})" in note
    # end to end: no zero-shot metric comes from an undeclared text encoder, and the reason is in the results
    ds = _tiny_split_data()
    res = run_overlay([tiny_vit], ds, words=["benign"], text_encoder=same_width, font_size=0.3, k=3, n_boot=10)
    m = res.models[tiny_vit.name]
    assert "zero_shot_accuracy" not in m["clean"] and "zero_shot_shift" not in m["words"]["benign"]["metrics"]
    assert res.to_dict()["models"][tiny_vit.name]["zero_shot"].startswith("none: the model has no text tower")
    res = run_overlay([tiny_vit], ds, words=["benign"], text_encoder=same_width, text_aligned=True, font_size=0.3, k=3,
                      n_boot=10)
    assert "zero_shot_shift" in res.models[tiny_vit.name]["words"]["benign"]["metrics"]


def test_overlay_dataset_has_its_own_cache_identity():
    base = _tiny_split_data().split("test")
    a, b = OverlayDataset(base, TextOverlay("x")), OverlayDataset(base, TextOverlay("y"))
    assert a.content_digest() != b.content_digest() != base.content_digest()
    assert a.ids == base.ids and (a.labels == base.labels).all()
    assert not torch.equal(a[0].image, base[0].image)
