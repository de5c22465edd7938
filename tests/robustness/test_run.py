"""run_attack end to end on tiny models: pairing, metrics vs references, resume, probe path (the command line:
tests/commands/test_attack.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medrep.data.base import TensorDataset
from medrep.errors import MedrepError
from medrep.robustness import (AttackInterrupted, detector_auc, detector_auc_bootstrap, draw_pairs, image_quality, noise_inconsistency,
                               run_attack, write_attack_outputs)

FAST = dict(steps=3, eps=[4 / 255, 8 / 255], noise_sigma=0.01, noise_draws=2, n_boot=50)


def test_pairs_are_other_class_and_seeded():
    labels = np.array([0, 0, 1, 2, 1, 0, 2, 2, 1, 0])
    idx, tl = draw_pairs(labels, 7, True, 3, "data")
    assert (labels[idx] != labels).all() and (tl == labels[idx]).all()
    assert np.array_equal(idx, draw_pairs(labels, 7, True, 3, "data")[0])
    assert not np.array_equal(idx, draw_pairs(labels, 8, True, 3, "data")[0])


def test_one_class_collide_is_refused(vit2):
    ds = TensorDataset(torch.rand(6, 1, 32, 32), [1] * 6, ["a", "b", "c"], name="oneclass")
    with pytest.raises(MedrepError, match="at least two classes") as err:
        run_attack(vit2, ds, objective="collide", steps=1)
    assert err.value.where == "oneclass"


@pytest.mark.parametrize("kwargs, where", [
    ({"eps": [0.0]}, "eps"), ({"eps": [-1 / 255]}, "eps"), ({"eps": [2.0]}, "eps"),
    ({"norm": "l1"}, "norm"), ({"objective": "swap"}, "objective"), ({"target": "nearest"}, "attack_target"),
    ({"classifiers": "probe"}, "train_dataset"),
    ({"norm": "l2", "eps": [32.5]}, "eps"),  # beyond √(1·32·32) = 32, the farthest two 1×32×32 images can be apart
    ({"noise_draws": 0}, "noise_draws"), ({"noise_sigma": [0.01, 0.0]}, "noise_sigma"),
])
def test_bad_run_options(vit2, kwargs, where):
    ds = TensorDataset(torch.rand(4, 1, 32, 32), [0, 1, 0, 1], ["a", "b", "c"])
    with pytest.raises(MedrepError) as err:
        run_attack(vit2, ds, steps=1, **kwargs)
    assert err.value.where == where


def test_image_quality_against_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 32, 32, generator=g)
    scale = torch.tensor([0.05, 0.2, 0.0]).view(-1, 1, 1, 1)  # more noise → lower SSIM; none → identical
    xa = (x + scale * torch.randn(3, 1, 32, 32, generator=g)).clamp(0, 1)
    psnr, ssim = image_quality(x, xa)
    mse = ((x - xa) ** 2).flatten(1).mean(1).double().numpy()
    assert psnr[:2] == pytest.approx(10 * np.log10(1 / mse[:2]), rel=1e-5)
    assert psnr[2] == 100.0 and ssim[2] == pytest.approx(1.0)
    assert ssim[1] < ssim[0] < 0.99


def test_noise_detector_and_auc():
    # classifier: is the mean pixel above 0.5?  Items near 0.5 flip under noise, far ones never do.
    classify = lambda p: (p.flatten(1).mean(1) > 0.5).long().numpy()  # noqa: E731
    for sigma, draws, where in ((0.1, 0, "noise_draws"), (0.0, 4, "noise_sigma")):
        with pytest.raises(MedrepError) as err:
            noise_inconsistency(classify, torch.rand(2, 1, 8, 8), sigma, draws)
        assert err.value.where == where
    far = torch.full((6, 1, 8, 8), 0.2)
    near = torch.full((6, 1, 8, 8), 0.5) + torch.linspace(-1e-3, 1e-3, 6).view(-1, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    s_far = noise_inconsistency(classify, far, 0.1, 16, g)
    s_near = noise_inconsistency(classify, near, 0.1, 16, g)
    assert (s_far == 0).all() and s_near.mean() > 0.25
    assert detector_auc(s_far, s_near) == pytest.approx(1.0)
    # against the Mann–Whitney definition: P(attacked > clean) + ½·P(tie)
    a, b = np.array([0.1, 0.4, 0.4, 0.0]), np.array([0.4, 0.9, 0.2])
    mw = np.mean([(bj > ai) + 0.5 * (bj == ai) for ai in a for bj in b])
    assert detector_auc(a, b) == pytest.approx(mw)
    # the vectorised bootstrap uses the rank form: its resamples must agree with scikit-learn's AUC
    rng = np.random.default_rng(0)
    c, d = rng.integers(0, 4, 30) / 4, rng.integers(1, 5, 30) / 4  # many ties, like real share-of-flips scores
    m = detector_auc_bootstrap(c, d, n_boot=400, seed=1)
    idx = np.random.default_rng(1).integers(0, 30, size=(400, 30))
    boots = [detector_auc(c[i], d[i]) for i in idx]
    assert m.value == pytest.approx(detector_auc(c, d))
    assert (m.low, m.high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])))


def test_run_and_outputs(vit2, small_phantoms, tmp_path):
    test = small_phantoms.split("test").limit(10, seed=1)
    r = run_attack(vit2, test, objective="collide", batch_size=4, seed=3, **FAST)
    d = r.to_dict()
    assert len(d["pairs"]) == 10 and all(p["source_label"] != p["target_label"] for p in d["pairs"])
    s = d["results"][1]
    m = s["metrics"]
    for key in ("clean_accuracy", "attacked_accuracy", "match_success_rate", "cosine_to_target_before",
                "cosine_to_target_after", "relative_change", "psnr_mean", "ssim_mean", "linf_mean", "l2_mean"):
        assert m[key]["n"] == 10 and m[key]["low"] <= m[key]["value"] <= m[key]["high"], key
    # recompute a few aggregates independently from the encoder and the per-item table
    x = torch.stack([it.image for it in test])
    with torch.no_grad():
        clean = vit2.logits(x).argmax(1).numpy()
    assert m["clean_accuracy"]["value"] == pytest.approx(np.mean(clean == test.labels))
    assert m["linf_mean"]["value"] <= 8 / 255 + 1e-6 and m["linf_mean"]["value"] > 4 / 255
    assert m["cosine_to_target_after"]["value"] > m["cosine_to_target_before"]["value"]
    assert len(s["loss_per_step"]) == 4 and s["loss_per_step"][-1] < s["loss_per_step"][0]
    paths = write_attack_outputs(r, tmp_path)
    assert {"results", "accuracy_vs_eps", "gallery_8-255", "per_item_4-255"} <= set(paths)
    for p in paths.values():
        assert p.stat().st_size > 0
    rows = (tmp_path / "per_item_eps8-255.csv").read_text().splitlines()
    assert len(rows) == 11 and rows[0].startswith("source_id,target_id,label")


def _figures(monkeypatch):
    """Keep every figure write_attack_outputs saves, by file name, so its texts and pixels can be read."""
    from medrep.robustness import outputs

    seen, real = {}, outputs._save
    monkeypatch.setattr(outputs, "_save", lambda fig, path: seen.setdefault(path.name, fig) and real(fig, path))
    return seen


def _difference_column(fig, n_items: int, size: int) -> np.ndarray:
    grid = np.asarray(fig.axes[0].images[0].get_array())
    pad = max(2, size // 16)
    x0 = pad + 2 * (size + pad)
    return np.stack([grid[pad + i * (size + pad):pad + i * (size + pad) + size, x0:x0 + size] for i in range(n_items)])


def test_l2_eps_is_a_distance_in_raw_units(vit2, small_phantoms, tmp_path, monkeypatch):
    test = small_phantoms.split("test").limit(4, seed=0)
    # ε = 2 is an ordinary L2 budget (each 32×32 pixel moves ~2/32 on average), not "twice the pixel range"
    r = run_attack(vit2, test, objective="push", norm="l2", eps=[0.5, 2.0], steps=2, batch_size=4,
                   noise_sigma=0.01, noise_draws=2, n_boot=20, gallery_size=2)
    l2 = r.per_eps[1].column("l2")
    assert (l2 <= 2.0 + 1e-4).all() and l2.max() > 1.9
    figs = _figures(monkeypatch)
    paths = write_attack_outputs(r, tmp_path)
    assert {"per_item_0.5", "per_item_2", "gallery_0.5", "gallery_2"} <= set(paths)
    assert (tmp_path / "per_item_eps0.5.csv").exists() and (tmp_path / "gallery_eps2.png").exists()
    assert figs["accuracy_vs_eps.png"].axes[0].get_xlabel() == "ε (L2, pixel units in [0, 1])"
    assert list(figs["accuracy_vs_eps.png"].axes[0].lines[0].get_xdata()) == [0.5, 2.0]
    assert [t.get_text() for t in figs["loss_per_step.png"].axes[0].get_legend().get_texts()] == ["L2 ε = 0.5", "L2 ε = 2"]
    # the difference column is amplified from the largest pixel change actually made, so it reaches black / white
    for e, name in ((0, "gallery_eps0.5.png"), (1, "gallery_eps2.png")):
        largest = np.abs(r.per_eps[e].gallery_adv - r.gallery_source).max()
        assert 0 < largest < 0.5  # an amplification of ×1 (ε-based: 0.5/ε ≤ 1) would leave it near grey
        diff = _difference_column(figs[name], 2, 32)
        assert np.abs(diff - 0.5).max() == pytest.approx(0.5, abs=1e-3)
        title = figs[name]._suptitle.get_text()
        assert f"L2 ε = {r.per_eps[e].eps:g}" in title and f"{0.5 / largest:.3g} ×" in title and "/255" not in title
        assert f"difference ×{0.5 / largest:.3g}" in [t.get_text() for t in figs[name].axes[0].get_xticklabels()]


def test_push_has_no_target_label(vit2, small_phantoms, tmp_path):
    import csv

    test = small_phantoms.split("test").limit(6, seed=0)
    for objective in ("push", "collide"):
        r = run_attack(vit2, test, objective=objective, eps=[2 / 255], steps=1, batch_size=6, noise_sigma=0.01,
                       noise_draws=1, n_boot=20)
        write_attack_outputs(r, tmp_path / objective, figures=False)
        rows = list(csv.DictReader(open(tmp_path / objective / "per_item_eps2-255.csv")))
        pairs = json.loads((tmp_path / objective / "results.json").read_text())["pairs"]
        assert len(rows) == 6
        if objective == "push":  # no target: nothing in either column, not a randomly drawn label
            assert all(row["target_id"] == "" and row["target_label"] == "" for row in rows)
            assert all(p["target"] is None and p["target_label"] is None for p in pairs)
        else:  # collide: the target image's label
            labels = dict(zip(test.ids, test.labels))
            assert all(row["target_label"] == str(labels[row["target_id"]]) != row["label"] for row in rows)


def test_resume_is_byte_identical(vit2, small_phantoms, tmp_path):
    test = small_phantoms.split("test").limit(8, seed=2)
    # push + L2: random start in the ball and detector noise are all exercised
    kw = dict(objective="push", norm="l2", eps=[0.25, 0.5], steps=2, batch_size=4, seed=11, noise_sigma=[0.01, 0.03], noise_draws=2, n_boot=50)
    full = run_attack(vit2, test, out_dir=tmp_path / "a", **kw)
    write_attack_outputs(full, tmp_path / "a", figures=False)
    with pytest.raises(AttackInterrupted):
        run_attack(vit2, test, out_dir=tmp_path / "b", stop_after_batches=1, **kw)
    with pytest.raises(MedrepError, match="--resume"):
        run_attack(vit2, test, out_dir=tmp_path / "b", **kw)
    with pytest.raises(MedrepError, match="different model, data or settings"):
        run_attack(vit2, test, out_dir=tmp_path / "b", resume=True, **{**kw, "seed": 12})
    # damage one finished unit: it must be recomputed, not trusted
    victim = tmp_path / "b" / "partial" / "b00000_e01.values.npy"
    raw = bytearray(victim.read_bytes())
    raw[-3] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="recomputing damaged"):
        resumed = run_attack(vit2, test, out_dir=tmp_path / "b", resume=True, **kw)
    write_attack_outputs(resumed, tmp_path / "b", figures=False)
    a = (tmp_path / "a" / "results.json").read_bytes()
    assert a == (tmp_path / "b" / "results.json").read_bytes()
    assert json.loads(a)["results"][0]["metrics"]["relative_change"]["value"] > 0


def test_headless_model_uses_probe_and_knn(tiny_headless, small_phantoms):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = small_phantoms.split("train"), small_phantoms.split("test").limit(8, seed=0)
    r = run_attack(tiny_headless, test, train, objective="collide", eps=[4 / 255], steps=2, batch_size=8,
                   noise_sigma=0.01, noise_draws=2, n_boot=50)
    assert r.classifiers == ["probe", "knn"]
    with torch.no_grad():
        ztr = tiny_headless.embed(torch.stack([it.image for it in train])).numpy()
        zte = tiny_headless.embed(torch.stack([it.image for it in test])).numpy()
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)).fit(ztr, train.labels)
    got = r.summaries[0]["classifiers"]["probe"]["clean_accuracy"]["value"]
    assert got == pytest.approx(np.mean(ref.predict(zte) == test.labels))
    assert "knn" in r.summaries[0]["classifiers"]


class _MixedSizes(TensorDataset):
    """Every other item at 48 px instead of the phantoms' 64 px (as in a DICOM set of CT and MR slices)."""

    def _load(self, index):
        item = super()._load(index)
        if index % 2:
            big = torch.nn.functional.interpolate(item.image[None], size=(48, 48), mode="bilinear", align_corners=False)[0]
            mask = None if item.mask is None else (
                torch.nn.functional.interpolate(item.mask[None, None].float(), size=(48, 48), mode="nearest")[0, 0] > 0.5)
            item = type(item)(item.id, big, item.label, mask, item.caption)
        return item


def test_mixed_size_data_is_attacked_and_explained_at_the_models_size(vit2, small_phantoms):
    from medrep.data.base import collate, resize_item
    from medrep.explain.run import run_explain

    test = small_phantoms.split("test").limit(6, seed=0)
    items = [test[i] for i in range(len(test))]
    mixed = _MixedSizes(torch.stack([it.image for it in items]), [it.label for it in items], small_phantoms.classes,
                        ids=[it.id for it in items], masks=torch.stack([it.mask for it in items]))
    assert {tuple(mixed[i].image.shape) for i in range(6)} == {(1, 64, 64), (1, 48, 48)}  # neither is the model's 32 px
    with pytest.raises(MedrepError, match="differ in shape"):
        collate([mixed[0], mixed[1]])
    batch = collate([mixed[0], mixed[1]], size=(32, 32))
    assert batch["image"].shape == (2, 1, 32, 32) and batch["mask"].dtype == torch.bool
    # the resize is the encoder's own: same bilinear + antialias as its preprocessing
    ref = torch.nn.functional.interpolate(mixed[1].image[None], size=(32, 32), mode="bilinear", align_corners=False, antialias=True)[0]
    assert torch.allclose(resize_item(mixed[1], (32, 32)).image, ref.clamp(0, 1))
    r = run_attack(vit2, mixed, objective="push", eps=[4 / 255], steps=2, batch_size=6, noise_sigma=0.01, noise_draws=2, n_boot=50)
    assert r.summaries[0]["metrics"]["psnr_mean"]["n"] == 6
    e = run_explain(vit2, mixed, methods=["gradcam", "random"], metrics=["pointing"], batch_size=6, n_boot=50)
    assert e.to_dict()["n_images"] == 6
