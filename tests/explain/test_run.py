"""Dataset-level runs: only masked images are scored, the summary matches the per-image values, outputs exist."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from medrep.errors import MedrepError
from medrep.explain.run import run_explain, write_explain_outputs
from medrep.intervals import bootstrap_metric, wilson_interval


def test_run_explain_scores_masked_images_and_summarises_them(vit64, small_phantoms, tmp_path):
    data = small_phantoms.split("test")
    res = run_explain(vit64, data, methods=["chefer", "gradcam"], metrics=["pointing", "iou", "mass", "deletion"],
                      limit=7, seed=1, batch_size=4, steps=4, topk=(10, 40), n_boot=200, gallery_size=3)
    assert res.methods == ["chefer", "gradcam", "random", "center"]  # baselines always beside the methods
    assert len(res.ids) == 7
    masked = {data[i].id: data[i] for i in range(len(data)) if data[i].mask.any()}
    assert set(res.ids) <= set(masked)
    areas = [float(masked[i].mask.float().mean()) for i in res.ids]
    assert res.mask_area["mean"] == pytest.approx(np.mean(areas))
    assert res.mask_area["n_without_mask"] == sum(1 for i in range(len(data)) if not data[i].mask.any())
    for method in res.methods:
        for key in ("pointing", "iou_box@10", "iou_pixel@40", "mass", "deletion_auc"):
            m = res.metrics[method][key]
            assert m.value == pytest.approx(res.per_image[method][key].mean())
            assert m.low <= m.value <= m.high and m.n == 7
    d = res.to_dict()
    assert {"metrics", "mask_area", "methods", "baselines", "higher_is_better", "settings", "n_images"} <= set(d)
    assert d["higher_is_better"]["deletion_auc"] is False and d["baselines"] == ["random", "center"]
    paths = write_explain_outputs(res, tmp_path)
    assert json.loads(paths["results"].read_text())["metrics"]["chefer"]["pointing"]["n"] == 7
    rows = list(csv.DictReader(paths["table"].open()))
    assert [r["method"] for r in rows] == res.methods and "iou_box@10_low" in rows[0]
    assert paths["gallery"].stat().st_size > 10_000


def test_embedding_target_for_a_headless_encoder(small_phantoms):
    from medrep.models import load_encoder

    torch.manual_seed(0)
    enc = load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=64&patch_size=16&depth=2&num_classes=0")
    data = small_phantoms.split("test")
    with pytest.raises(MedrepError, match="--explain-target"):
        run_explain(enc, data, methods=["chefer"], metrics=["pointing"], limit=2)
    res = run_explain(enc, data, methods=["chefer", "chefer-lrp"], metrics=["pointing", "insertion"], target="embedding",
                      limit=4, batch_size=4, steps=2, n_boot=50)
    assert res.target == "embedding" and np.isfinite(res.per_image["chefer-lrp"]["insertion_auc"]).all()


def test_bad_options_name_the_option(vit64, small_phantoms):
    data = small_phantoms.split("test")
    for kwargs, where in ((dict(metrics=["pointing", "accuracy"]), "^metrics: "), (dict(methods=["lime"]), "^methods: unknown explanation method"),
                          (dict(target="text"), "^explain_target: "), (dict(upsampling="cubic"), "^upsample: ")):
        with pytest.raises(MedrepError, match=where):
            run_explain(vit64, data, **{"methods": ["attention"], "metrics": ["pointing"], "limit": 2, **kwargs})


def test_text_prompt_references_come_from_the_text_tower(open_clip_tiny, x32):
    from medrep.explain.methods import explain
    from medrep.explain.run import text_references
    from medrep.explain.targets import Target

    with pytest.raises(MedrepError, match="open-clip-tiny has no text tower"):
        text_references(open_clip_tiny, ["benign"], "a {} lesion")

    class Tower:
        def encode_text(self, texts):
            return torch.stack([torch.full((16,), float(len(t))) for t in texts])

    enc = open_clip_tiny
    enc.text_encoder = Tower()
    try:
        refs = text_references(enc, ["a", "bbb"], "x {} y")
        assert refs[:, 0].tolist() == [5.0, 7.0]
        with pytest.raises(MedrepError, match="^prompt: "):
            text_references(enc, ["a"], "no placeholder")
        maps = explain(enc, x32[:2], "chefer", Target("embedding", references=refs))
        assert maps.shape == (2, 32, 32)
    finally:
        enc.text_encoder = None


def _half_dead(encoder, pixels, target=None):
    """Test method: the pixel mean, but a constant (all-zero) map for every even row of the batch."""
    maps = pixels.float().mean(1)
    maps[0::2] = 0.0
    return maps


def test_dead_maps_are_counted_and_score_zero(vit64, small_phantoms, monkeypatch, tmp_path, capsys):
    from medrep.cli import main
    from medrep.explain.methods import METHODS

    monkeypatch.setitem(METHODS, "half-dead", _half_dead)
    data = small_phantoms.split("test")
    res = run_explain(vit64, data, methods=["half-dead"], metrics=["pointing", "iou", "mass"], limit=6, batch_size=4,
                      topk=(40,), n_boot=20)
    # batches of 4 and 2 images: rows 0, 2 of the first and row 0 of the second are constant
    assert res.dead["half-dead"].tolist() == [True, False, True, False, True, False]
    assert res.dead_maps == {"half-dead": 3, "random": 0, "center": 0}
    assert res.to_dict()["dead_maps"]["half-dead"] == 3
    for key in ("pointing", "iou_box@40", "iou_pixel@40", "mass"):
        assert res.per_image["half-dead"][key][res.dead["half-dead"]].tolist() == [0.0, 0.0, 0.0]

    out = tmp_path / "ex"
    assert main(["explain", "--model", "demo-cnn", "--methods", "half-dead", "--metrics", "pointing", "--limit", "4",
                 "--batch-size", "4", "--out", str(out), "--quiet", "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "dead (constant) maps, scored 0 on pointing and IoU: half-dead 2/4" in printed
    assert json.loads((out / "results.json").read_text())["dead_maps"] == {"half-dead": 2, "random": 0, "center": 0}


def _two_level(encoder, pixels, target=None):
    """Test method: 1 everywhere, 4 on the top-left quadrant (at pixel resolution, so no upsampling)."""
    b, _, h, w = pixels.shape
    maps = torch.ones(b, h, w)
    maps[:, : h // 2, : w // 2] += 3.0
    return maps


def test_mass_is_taken_on_the_raw_map_and_the_rest_on_the_normalised_one(vit64, small_phantoms, monkeypatch):
    from medrep.explain.methods import METHODS

    monkeypatch.setitem(METHODS, "two-level", _two_level)
    res = run_explain(vit64, small_phantoms.split("test"), methods=["two-level"], metrics=["mass", "pointing", "iou"],
                      limit=4, batch_size=4, topk=(25,), gallery_size=4, add_baselines=False, n_boot=20)
    masks = res.gallery["masks"].astype(bool)  # the scored masks, at the model's 64×64 input
    assert masks.shape == (4, 64, 64)
    quad = np.zeros((64, 64), dtype=bool)
    quad[:32, :32] = True
    for i, m in enumerate(masks):
        # raw: Σ_mask map / Σ map = (|M| + 3|M ∩ Q|) / (4096 + 3·1024); the normalised map (0/1 on Q) would give |M ∩ Q| / 1024
        expected = (m.sum() + 3 * (m & quad).sum()) / (64 * 64 + 3 * 32 * 32)
        assert res.per_image["two-level"]["mass"][i] == pytest.approx(expected, rel=1e-6)
        # pointing and IoU still on the normalised map: the peak is the quadrant, the top 25% exactly the quadrant
        assert res.per_image["two-level"]["pointing"][i] == float((m & quad).any())
        assert res.per_image["two-level"]["iou_pixel@25"][i] == pytest.approx((m & quad).sum() / (m | quad).sum())


def test_per_image_scores_are_written(monkeypatch, tmp_path, capsys):
    from medrep.cli import main
    from medrep.data import load_dataset
    from medrep.explain.methods import METHODS

    monkeypatch.setitem(METHODS, "half-dead", _half_dead)
    out = tmp_path / "ex"
    assert main(["explain", "--model", "demo-cnn", "--methods", "half-dead", "--metrics", "pointing,mass", "--limit", "4",
                 "--batch-size", "4", "--out", str(out), "--quiet", "--no-cache"]) == 0
    assert f"{out / 'per_image_scores.csv'}" in capsys.readouterr().out  # named in the "wrote …" line
    rows = list(csv.DictReader((out / "per_image_scores.csv").open()))
    assert list(rows[0]) == ["id", "label", "method", "pointing", "mass", "dead_map"]
    res = json.loads((out / "results.json").read_text())
    assert [(r["id"], r["method"]) for r in rows] == [(i, m) for i in res["ids"] for m in ("half-dead", "random", "center")]
    test = load_dataset("demo").split("test")
    label_of = {test[i].id: test.classes[test[i].label] for i in range(len(test)) if test[i].id in res["ids"]}
    assert all(r["label"] == label_of[r["id"]] for r in rows)
    half = [r for r in rows if r["method"] == "half-dead"]
    assert [r["dead_map"] for r in half] == ["1", "0", "1", "0"]  # rows 0 and 2 of the batch are constant
    assert all(r["pointing"] == "0" and r["mass"] == "0" for r in half if r["dead_map"] == "1")
    for m in ("half-dead", "random", "center"):
        for k in ("pointing", "mass"):
            values = [float(r[k]) for r in rows if r["method"] == m]
            assert np.mean(values) == pytest.approx(res["metrics"][m][k]["value"], abs=1e-6)


def test_option_errors_of_the_methods_name_the_option(vit2, x32):
    from medrep.explain.methods import explain

    for method, opts, option in (("gradcam", {"layer": "nosuch"}, "gradcam_layer"), ("ig", {"steps": 0}, "ig_steps"),
                                 ("rollout", {"discard_ratio": 1.0}, "discard_ratio"),
                                 ("attention", {"head_fusion": "median"}, "head_fusion")):
        with pytest.raises(MedrepError, match=f"^{option}: "):
            explain(vit2, x32[:1], method, **opts)


def test_table_shows_intervals_and_directions(tmp_path, capsys):
    from medrep.explain.run import ExplainResult
    from medrep.results import Metric

    res = ExplainResult(model="m", data={}, target="class", methods=["gradcam", "random"],
                        metric_names=["pointing", "deletion_auc"],
                        metrics={"gradcam": {"pointing": Metric(0.5, 0.25, 0.75, 4), "deletion_auc": Metric(0.125, 0.1, 0.15, 4)},
                                 "random": {"pointing": Metric(0.0, 0.0, 0.0, 4), "deletion_auc": Metric(float("nan"), None, None, 0)}},
                        per_image={}, ids=["a", "b", "c", "d"], mask_area={}, settings={"bootstrap": {"n_boot": 200}})
    assert res.format_table().splitlines() == [
        "method   pointing ↑            deletion_auc ↓",
        "gradcam  0.500 [0.250, 0.750]  0.125 [0.100, 0.150]",
        "random   0.000 [0.000, 0.000]  nan",
        "mean [95% CI over images: Wilson score interval for pointing (a 0/1 hit per image), percentile bootstrap "
        "for the others, 200 resamples]; ↑ higher is better, ↓ lower is better "
        "(deletion_auc: the score should fall fast as the top pixels go)",
    ]
    assert res.format_table(ascii_only=True).splitlines()[0] == "method   pointing ^            deletion_auc v"

    from medrep.cli import main

    assert main(["explain", "--model", "demo-cnn", "--methods", "gradcam", "--metrics", "pointing,deletion", "--deletion-steps", "2",
                 "--limit", "4", "--batch-size", "4", "--out", str(tmp_path / "ex"), "--quiet", "--no-cache"]) == 0
    head, gradcam = capsys.readouterr().out.splitlines()[:2]
    assert head.split() == ["method", "pointing", "↑", "deletion_auc", "↓"]
    assert gradcam.startswith("gradcam") and gradcam.count("[") == 2


def test_explain_intervals_are_wilson_for_pointing_and_bootstrap_otherwise(tmp_path):
    """Through run_explain: pointing's interval is Wilson's for its hit count; the others are not."""
    from medrep.data import load_dataset
    from medrep.explain.run import run_explain
    from medrep.models import load_encoder

    res = run_explain(load_encoder("demo-cnn"), load_dataset("demo?n_train=4&n_val=0&n_test=12&seed=3&size=32").split("test"),
                      methods=["gradcam"], metrics=["pointing", "mass"], limit=8, batch_size=8, add_baselines=False,
                      n_boot=200)
    hits = res.per_image["gradcam"]["pointing"]
    point = res.metrics["gradcam"]["pointing"]
    assert (point.low, point.high) == pytest.approx(wilson_interval(int(hits.sum()), len(hits)))
    mass = res.metrics["gradcam"]["mass"]
    assert (mass.low, mass.high) == pytest.approx(
        (lambda m: (m.low, m.high))(bootstrap_metric(res.per_image["gradcam"]["mass"], n_boot=200, seed=0, proportion=False)))
