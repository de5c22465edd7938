"""run_features end to end on small data: keys, layers of one model, outputs, and clear errors."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from medrep.data.base import SplitDataset, TensorDataset
from medrep.errors import MedrepError
from medrep.features.outputs import write_features_outputs
from medrep.features.result import MODEL_METRICS
from medrep.features.run import run_features
from medrep.features.projection import project_2d
from medrep.models import load_encoder
from medrep.models.base import Preprocessing


def _data(n_train=45, n_test=30, one_class_train=False):
    g = torch.Generator().manual_seed(1)
    n = n_train + n_test
    imgs = torch.rand(n, 1, 32, 32, generator=g) * 0.5
    labels = np.arange(n) % 3
    imgs[labels == 1, :, 8:24, 8:24] += 0.45
    imgs[labels == 2, :, 4:12, 4:28] += 0.45
    ytr = np.zeros(n_train, int) if one_class_train else labels[:n_train]
    classes = ["normal", "benign", "malignant"]
    return SplitDataset({"train": TensorDataset(imgs[:n_train], ytr, classes, name="a-train"),
                         "test": TensorDataset(imgs[n_train:], labels[n_train:], classes, name="a-test")}, "synthetic")


def test_run_features_across_layers_of_one_model(tiny_vit, tmp_path):
    ds = _data()
    res = run_features([tiny_vit], ds, layers=["blocks.0", "blocks.1"], pool="cls", shots=(1, 5), n_draws=3,
                       n_boot=20, n_permutations=30, projections=(), k=5, mutual_k=5)
    names = list(res.models)
    assert names == [f"{tiny_vit.name}@blocks.0", f"{tiny_vit.name}@blocks.1"]
    for m in res.models.values():
        assert set(MODEL_METRICS) | {"few_shot_1_accuracy", "few_shot_5_accuracy"} <= set(m["metrics"])
        for met in m["metrics"].values():
            assert met.low is not None and met.low <= met.value + 1e-9 and met.value <= met.high + 1e-9
    (pair,) = res.pairs
    assert 0 < pair.cka.value <= 1 and 0 < pair.cka_p_value <= 1
    figures = write_features_outputs(res, tmp_path)
    d = json.loads((tmp_path / "results.json").read_text())
    for name in names:
        assert set(MODEL_METRICS) <= set(d["models"][name])
        assert np.asarray(d["models"][name]["centroid_cosine"]).shape == (3, 3)
    assert {"cka", "cka_p_value", "mutual_knn"} <= set(d["pairs"][0])
    assert (tmp_path / "models.csv").read_text().count("\n") == 3 and (tmp_path / "pairs.csv").exists()
    assert figures["cka"].exists() and all(p.exists() for p in figures.values())


def test_second_run_reads_embeddings_from_cache(tiny_vit):
    ds = _data()
    from medrep.features.run import load_representations

    first = load_representations([tiny_vit], ds.split("train"), ds.split("test"))
    again = load_representations([tiny_vit], ds.split("train"), ds.split("test"))
    assert not first[0].test.meta["from_cache"] and again[0].test.meta["from_cache"]
    np.testing.assert_array_equal(first[0].test.vectors, again[0].test.vectors)


def test_projections_small():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20, 8)) + 4, rng.normal(size=(20, 8)) - 4])
    for method in ("tsne", "umap"):
        coords, idx = project_2d(x, method, seed=0, max_items=30)
        assert coords.shape == (30, 2) and np.isfinite(coords).all() and len(idx) == 30
    with pytest.raises(MedrepError, match="unknown projection"):
        project_2d(x, "pca")


def test_errors_one_class_duplicates_nan(tiny_vit):
    with pytest.raises(MedrepError, match="only one class"):
        run_features([tiny_vit], _data(one_class_train=True), projections=())
    with pytest.raises(MedrepError, match="listed twice"):
        run_features([tiny_vit, tiny_vit], _data(), projections=())
    with pytest.raises(MedrepError, match="needs a 'dev'"):
        run_features([tiny_vit], _data(), train_split="dev", projections=())

    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            out = x.flatten(1)[:, :4] * self.w
            out[0, 0] = float("nan")
            return out

    bad = load_encoder(NaNNet(), preprocessing=Preprocessing((32, 32), (0.0,), (1.0,), 1), name="nan-net")
    with pytest.raises(MedrepError, match="NaN"):
        run_features([bad], _data(), projections=())


def test_pair_table_and_terminal_line_name_the_cka_subsample():
    from medrep.features.outputs import format_model_table
    from medrep.features.result import FeaturesResult
    from medrep.features.similarity import compare_spaces
    from medrep.report.html import Table, _table

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    res = FeaturesResult(pairs=[compare_spaces(x, y, "m1", "m2", k=5, n_permutations=10, n_boot=10, max_items=200)])
    (row,) = res.pair_table()
    assert row["n"] == 600 and row["cka_rows"] == 200
    assert row["cka_all_rows"] == pytest.approx(res.pairs[0].extra["cka_all_rows"]) and row["cka_all_rows"] < row["cka"]
    assert "on 200 of 600 items, all items" in format_model_table(res)
    html = _table(Table("Between models", [row]))
    assert ">cka all rows</span></th>" in html and ">cka rows</span></th>" in html  # the report shows keys as words
