"""CheXlocalize's human benchmark: the second reader's hit rate and mIoU scored as the model's, and the model's
percentage decrease from it, against hand calculations; its absence said once, never a zero; a malformed hb file
refused in one line; a csv: manifest's second_reader= column."""
from __future__ import annotations

import json

import numpy as np
import pytest
import recipe_trees as trees
import torch

from medrep.cli import main
from medrep.data.base import SecondReading
from medrep.explain import chexlocalize

EXPLAIN = ["explain", "--model", "demo-cnn", "--split", "test", "--protocol", "chexlocalize", "--methods", "gradcam",
           "--no-baselines", "--metrics", "pointing", "--batch-size", "4", "--n-boot", "200", "--quiet"]


def test_human_scores_and_percentage_decrease_by_hand():
    truth = np.zeros((6, 8), bool)
    truth[1:4, 2:6] = True  # 12 pixels
    drawn = np.zeros((6, 8), bool)
    drawn[2:5, 2:6] = True  # 12 pixels, 8 shared: IoU 8 / 16
    readings = [SecondReading(torch.from_numpy(drawn), np.array([[5.9, 3.9]])),  # int() → (5, 3): inside
                SecondReading(torch.from_numpy(drawn), np.array([[6.0, 3.0], [-1.0, 2.0]])),  # outside; off the image
                SecondReading(torch.zeros(6, 8, dtype=torch.bool), np.zeros((0, 2)))]  # read, nothing drawn or marked
    got = chexlocalize.human_scores([truth] * 3, readings)
    np.testing.assert_array_equal(got["hit"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(got["iou"], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(got["predicted"], [True, True, False])
    # each side's mean over its own non-NaN images, as the reference code's pandas means
    human, model = np.array([0.5, 0.5, np.nan, 1.0]), np.array([0.25, np.nan, 0.5, 0.0])
    dec = chexlocalize.percentage_decrease(model, human, n_boot=300, seed=1)
    assert dec["value"] == pytest.approx((2 / 3 - 0.25) / (2 / 3) * 100)
    assert dec["low"] <= dec["value"] <= dec["high"]
    # whole patients resampled together: a patient's two images always travel as one
    clustered = chexlocalize.percentage_decrease(model, human, n_boot=300, seed=1, groups=np.array(["a", "a", "b", "c"]))
    assert clustered["value"] == dec["value"] and clustered["n_patients"] == 3


def _results(out):
    return json.loads((out / "results.json").read_text())["by_method"]["gradcam"]["chexlocalize"]


@pytest.mark.slow
def test_explain_reports_the_human_benchmark_of_the_chexlocalize_release(tmp_path, capsys):
    root = trees.chexlocalize(tmp_path / "data", human_benchmark=True)
    spec = f"chexlocalize:{root}?finding=Cardiomegaly"
    base = [*EXPLAIN, "--data", spec, "--cache-dir", str(tmp_path / "cache")]
    assert main([*base, "--out", str(tmp_path / "e")]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    rec = _results(tmp_path / "e")
    hb = rec["human_benchmark"]
    # trees.HUMAN_BENCHMARK: hits 1, 0, 0 (image 4 not in the files); IoUs 1, 84 / 252, 0 (nothing drawn)
    assert hb["hit_rate"]["per_class"]["Cardiomegaly"]["value"] == pytest.approx(1 / 3)
    assert hb["miou"]["per_class"]["Cardiomegaly"]["value"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    for key, human in (("hit_rate", 1 / 3), ("miou", 4 / 9)):
        model = rec[key]["per_class"]["Cardiomegaly"]["value"]
        dec = hb["percentage_decrease"][key]["per_class"]["Cardiomegaly"]
        assert dec["value"] == pytest.approx((human - model) / human * 100) and dec["n_patients"] == 3
        assert dec["low"] <= dec["value"] <= dec["high"]
    assert "CheXlocalize human benchmark: hit rate 0.333" in out and "mIoU 0.444" in out
    assert "decrease from the human benchmark" in out
    # true positives only: image 4 (nothing drawn) leaves the human's mIoU, as the reference code's NaN
    assert main([*base, "--miou-on", "true-positives", "--out", str(tmp_path / "tp")]) == 0
    assert _results(tmp_path / "tp")["human_benchmark"]["miou"]["overall"]["value"] == pytest.approx((1 + 1 / 3) / 2)


@pytest.mark.slow
def test_no_human_benchmark_is_said_once_and_a_malformed_hb_file_is_refused(tmp_path, capsys):
    root = trees.chexlocalize(tmp_path / "data")
    base = [*EXPLAIN, "--data", f"chexlocalize:{root}?finding=Cardiomegaly", "--cache-dir", str(tmp_path / "cache")]
    assert main([*base, "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    rec = _results(tmp_path / "e")
    assert rec["human_benchmark"] is None and rec["human_benchmark_note"].startswith("no human benchmark in this data")
    assert out.count("no human benchmark in this data") == 1 and "decrease" not in out
    hb = root / "CheXlocalize" / "hb_segmentations_test.json"
    hb.write_text('{"patient64741_study1_view1_frontal": {"Cardiomegaly": ', encoding="utf-8")
    assert main([*base, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "hb_segmentations_test.json" in err and "malformed JSON" in err


@pytest.mark.slow
def test_a_csv_manifest_declares_a_second_readers_masks(tmp_path, capsys):
    from PIL import Image

    rows = ["path,label,mask,second_reader"]
    for k in range(3):
        img = (np.random.default_rng(k).random((32, 32)) * 255).astype(np.uint8)
        truth, second = np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)
        truth[4:12, 4:12] = 255  # 64 pixels
        second[4:12, 8:16] = 255  # 32 shared, union 96: IoU 1/3
        Image.fromarray(img).save(tmp_path / f"i{k}.png")
        Image.fromarray(truth).save(tmp_path / f"m{k}.png")
        Image.fromarray(second).save(tmp_path / f"s{k}.png")
        rows.append(f"i{k}.png,{'ab'[k % 2]},m{k}.png,{'' if k == 2 else f's{k}.png'}")  # blank: outlined nothing
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    args = [a for a in EXPLAIN if a not in ("--split", "test")]
    assert main([*args, "--data", f"csv:{tmp_path / 'd.csv'}", "--out", str(tmp_path / "e"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0, capsys.readouterr().err
    hb = _results(tmp_path / "e")["human_benchmark"]
    assert hb["miou"]["overall"]["value"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert hb["hit_rate"] is None and hb["percentage_decrease"]["hit_rate"] is None and "no most-representative" in hb["hit_rate_note"]
