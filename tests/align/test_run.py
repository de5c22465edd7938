"""run_alignment end to end on small phantoms: exact cases where stitching must equal the target, zero-shot
through the real MiniLM, written outputs, and errors that name the bad option (the command line:
tests/commands/test_align.py)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from medrep.align import run_alignment, write_align_outputs
from medrep.errors import MedrepError


@pytest.fixture(scope="module")
def tiny32(make_tiny_vit):
    return make_tiny_vit(depth=1, embed_dim=32, num_heads=2)


def _rotated_copy(src, width=48, seed=0):
    """The same network, its embedding zero-padded to ``width`` and rotated: a target T can recover exactly."""
    from medrep.models.base import ModuleEncoder

    q = torch.as_tensor(ortho_group.rvs(width, random_state=seed), dtype=torch.float32)

    def embed(module, x):
        e = src._forward_default(x)
        return torch.nn.functional.pad(e, (0, width - e.shape[1])) @ q

    return ModuleEncoder(src.module, src.preprocessing, name="rotated-copy", embed_fn=embed)


def test_stitching_into_a_rotated_copy_equals_the_targets_own_accuracy(tiny32, small_phantoms, tmp_path):
    res = run_alignment(tiny32, small_phantoms, target_encoder=_rotated_copy(tiny32), anchors=[40, 100],
                        estimator="linear", relative=True, n_boot=200)
    for n in (40, 100):
        m = res.by_anchors[n]
        assert m["stitched_accuracy"].value == pytest.approx(m["target_accuracy"].value)
        assert m["retrieval_top1"].value == 1.0 and m["mean_cosine"].value > 0.9999
        assert m["stitched_accuracy"].low <= m["stitched_accuracy"].value <= m["stitched_accuracy"].high
        assert m["stitched_accuracy"].n == 60
    # Procrustes without scaling recovers a pure rotation too
    ortho = run_alignment(tiny32, small_phantoms, target_encoder=_rotated_copy(tiny32), anchors=100, scale=False, n_boot=50)
    assert ortho.metrics["retrieval_top1"].value == 1.0
    figs = write_align_outputs(res, tmp_path)
    d = json.loads((tmp_path / "results.json").read_text())
    for key in ("stitched_accuracy", "target_accuracy", "naive_accuracy", "shuffled_accuracy", "retrieval_top1",
                "relative_stitched_accuracy"):
        assert set(d["by_anchors"]["100"][key]) == {"value", "low", "high", "n"}, key
    rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert {r["anchors"] for r in rows} == {"40", "100"}
    assert figs["accuracy_vs_anchors"].read_bytes()[:4] == b"\x89PNG"


def test_zero_shot_through_minilm_on_the_demo_cnn(demo_cnn, small_phantoms):
    res = run_alignment(demo_cnn, small_phantoms, text_encoder="minilm", anchors=[100], n_boot=200)
    m = res.metrics
    assert m["zero_shot_accuracy"].value >= 0.8, m  # the CNN separates the classes; T carries that into text space
    assert m["zero_shot_naive_accuracy"].value <= 0.55
    assert m["chance_accuracy"].value == pytest.approx(1 / 3)
    assert m["caption_prompt_accuracy"].value >= 0.9  # the default prompts classify the true captions
    assert "few-shot" in " ".join(res.notes)
    assert set(res.prompts) == {"normal", "benign", "malignant"}


def test_errors_name_the_option(tiny32, small_phantoms):
    with pytest.raises(MedrepError, match="^target_model/text: "):
        run_alignment(tiny32, small_phantoms)
    with pytest.raises(MedrepError, match=r"^anchors: the linear estimator needs at least 32 anchors.*got 10"):
        run_alignment(tiny32, small_phantoms, target_encoder=tiny32, anchors="10,50", estimator="linear")
    # more anchors than training items: scaled down to the data (and said so), not refused
    res = run_alignment(tiny32, small_phantoms, target_encoder=tiny32, anchors=500, n_boot=20)
    assert list(res.by_anchors) == [len(small_phantoms.split("train"))]
    assert any("anchor counts scaled down to the data: 500 → " in n for n in res.notes)
    with pytest.raises(MedrepError, match="^text: .*not a text encoder"):
        run_alignment(tiny32, small_phantoms, text_encoder="demo-cnn")


def test_automatic_split_keeps_every_frame_of_a_file_on_one_side():
    from medrep.align.run import _splits
    from medrep.data.base import TensorDataset

    # 20 multi-frame files of 2–6 frames ("<path>#frame=N", as ?frames=all makes them), two classes
    n_frames = [2 + i % 5 for i in range(20)]
    ids = [f"c{i % 2}/patient{i}.dcm#frame={k}" for i in range(20) for k in range(n_frames[i])]
    labels = [i % 2 for i in range(20) for _ in range(n_frames[i])]
    ds = TensorDataset(torch.zeros(len(ids), 1, 4, 4), labels, ["a", "b"], ids=ids, name="frames")
    train, test, note = _splits(ds, "train", "test", seed=0)
    files = lambda part: {i.split("#")[0] for i in part.ids}  # noqa: E731
    assert files(train) and files(test) and not files(train) & files(test)
    assert len(files(train)) + len(files(test)) == 20 and len(train) + len(test) == len(ids)
    assert 0.6 < len(train) / len(ids) < 0.8 and set(test.labels.tolist()) == {0, 1}
    assert "by source file" in note
    again, _, _ = _splits(ds, "train", "test", seed=0)
    other, _, _ = _splits(ds, "train", "test", seed=1)
    assert again.ids == train.ids and other.ids != train.ids  # deterministic with the seed
    # one item per file: the seeded per-item stratified split, 70/30 in each class
    flat = TensorDataset(torch.zeros(40, 1, 4, 4), np.arange(40) % 2, ["a", "b"], name="flat")
    tr, te, _ = _splits(flat, "train", "test", seed=0)
    assert np.bincount(tr.labels).tolist() == [14, 14] and np.bincount(te.labels).tolist() == [6, 6]
    # a single file cannot be split without leaking frames
    one = TensorDataset(torch.zeros(4, 1, 4, 4), [0, 1, 0, 1], ["a", "b"], ids=[f"x.dcm#frame={k}" for k in range(4)])
    with pytest.raises(MedrepError, match="source file") as err:
        _splits(one, "train", "test", seed=0)
    assert err.value.where == "data"


def test_native_zero_shot_uses_the_models_own_text_tower():
    from types import SimpleNamespace

    import torch

    from medrep.align.result import AlignResult
    from medrep.align.run import _native_zero_shot

    protos = np.eye(3, 8) * 5

    class Tower:
        name, fingerprint = "stub-tower", "stub-tower-v1"

        def encode_text(self, texts):  # each prompt names its class index
            return torch.as_tensor(np.stack([protos[int(t[-1])] for t in texts]), dtype=torch.float32)

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    img = protos[y] + rng.standard_normal((50, 8)) * 0.5
    prompts = {c: [f"p{i}"] for i, c in enumerate("abc")}
    res = AlignResult("s", None, "t", "ortho", "random", 0, [10])
    boot = lambda v: __import__("medrep.results").results.bootstrap_metric(v, n_boot=20)  # noqa: E731
    m = _native_zero_shot(SimpleNamespace(text_encoder=Tower()), img, y, prompts, list("abc"), boot, res)
    assert m.value == 1.0
    assert _native_zero_shot(SimpleNamespace(text_encoder=Tower()), img[:, :5], y, prompts, list("abc"), boot, res) is None
    assert "native zero-shot skipped" in res.notes[0]
    assert _native_zero_shot(SimpleNamespace(), img, y, prompts, list("abc"), boot, res) is None


def test_a_stitching_target_classifier_is_fitted_once_per_embeddings_and_labels():
    from types import SimpleNamespace

    from medrep.align import run as align_run

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((60, 8))
    labels = np.repeat([0, 1, 2], 20)
    train = SimpleNamespace(key="emb-key-for-test", vectors=vectors)
    first = align_run._target_probe(train, labels, 0)
    assert align_run._target_probe(train, labels, 0) is first  # a second source into the same target: no refit
    assert align_run._target_probe(train, labels[::-1].copy(), 0) is not first  # other labels: fitted afresh
    assert align_run._target_probe(train, labels, 1) is not first  # another seed too
    unkeyed = SimpleNamespace(key="", vectors=vectors)
    assert align_run._target_probe(unkeyed, labels, 0) is not align_run._target_probe(unkeyed, labels, 0)
    np.testing.assert_array_equal(first.predict(vectors), align_run.fit_probe(vectors, labels, 0).predict(vectors))
