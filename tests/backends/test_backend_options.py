"""Backend choice without a cluster: the local default, the one-line error without Ray, use_backend."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from medrep.backends import LocalBackend, current_backend, get_backend, use_backend
from medrep.data.base import TensorDataset
from medrep.errors import MedrepError
from medrep.features.cache import EmbeddingCache
from medrep.features.extract import extract_embeddings


class CountingBackend(LocalBackend):
    name = "counting"

    def __init__(self):
        self.units = []

    def map(self, job, encoder, dataset, units, progress=None):
        self.units += list(units)
        yield from super().map(job, encoder, dataset, units, progress)


def test_local_is_the_default():
    assert isinstance(current_backend(), LocalBackend) and get_backend("local").name == "local"
    with pytest.raises(MedrepError) as err:
        get_backend("spark")
    assert err.value.where == "backend"
    with pytest.raises(MedrepError, match="needs --backend ray") as err:
        get_backend("local", address="auto")
    assert err.value.where == "ray_address"


def test_ray_missing_says_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError, as on a machine without it
    with pytest.raises(MedrepError, match=r"pip install 'medrep\[ray\]'") as err:
        get_backend("ray")
    assert err.value.where == "backend"
    from medrep.cli import main

    code = main(["extract", "--model", "demo-cnn", "--data", "demo", "--out", str(tmp_path / "out"), "--backend", "ray"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "pip install 'medrep[ray]'" in lines[0]
    assert not (tmp_path / "out").exists()  # refused before any work


def test_use_backend_routes_every_extraction(tiny_vit):
    ds = TensorDataset(torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0)), [0, 1] * 5, ["a", "b"])
    plain = extract_embeddings(tiny_vit, ds, chunk_size=4, cache=EmbeddingCache(enabled=False))
    counting = CountingBackend()
    with use_backend(counting):
        assert current_backend() is counting
        routed = extract_embeddings(tiny_vit, ds, chunk_size=4, cache=EmbeddingCache(enabled=False))
    assert counting.units == [0, 1, 2] and isinstance(current_backend(), LocalBackend)
    assert routed.meta["backend"] == "counting" and np.array_equal(routed.vectors, plain.vectors)
