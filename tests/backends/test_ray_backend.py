"""The Ray backend on a local 2-CPU cluster (started once for the module): same embeddings as the local
backend, the same cache chunks and partial files, and an attack that survives a killed worker."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'medrep[ray]'): the ray backend is optional")

from medrep.backends.ray_backend import RayBackend  # noqa: E402
from medrep.data.base import TensorDataset  # noqa: E402
from medrep.features.cache import EmbeddingCache  # noqa: E402
from medrep.features.extract import Embeddings, extract_embeddings  # noqa: E402

TINY = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3"
DEMO_DATA = "demo?n_train=0&n_val=0&n_test=40"


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread here too, as in a 1-CPU worker: far faster for these tiny models on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backend(cluster):
    be = RayBackend()
    yield be
    be.close()


@pytest.fixture(scope="module")
def demo_cnn_small():
    from medrep.data import load_dataset
    from medrep.models import load_encoder

    return load_encoder("demo-cnn"), load_dataset(DEMO_DATA).split("test")


def test_extract_cli_ray_matches_local_and_fills_the_cache(cluster, tmp_path, capsys):
    from medrep.cli import main

    base = ["extract", "--model", "demo-cnn", "--data", DEMO_DATA, "--batch-size", "8", "--quiet"]
    cache = tmp_path / "cache"
    assert main(base + ["--out", str(tmp_path / "local"), "--no-cache"]) == 0
    assert main(base + ["--out", str(tmp_path / "ray"), "--cache-dir", str(cache), "--backend", "ray"]) == 0
    local = Embeddings.from_parquet(tmp_path / "local" / "embeddings.parquet")
    remote = Embeddings.from_parquet(tmp_path / "ray" / "embeddings.parquet")
    assert remote.ids == local.ids and np.array_equal(remote.labels, local.labels)
    assert np.abs(remote.vectors - local.vectors).max() <= 1e-5
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["arguments"]["backend"] == "ray"
    # the Ray run wrote the same content-addressed entry the local backend reads
    assert len(list(cache.rglob("complete.json"))) == 1
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "again"), "--cache-dir", str(cache)]) == 0
    assert "(from cache)" in capsys.readouterr().out


def test_extract_sharded_over_both_workers_and_resumes(backend, demo_cnn_small, tmp_path):
    enc, ds = demo_cnn_small
    local = extract_embeddings(enc, ds, batch_size=4, chunk_size=8, cache=EmbeddingCache(enabled=False))
    cache = EmbeddingCache(tmp_path / "c")
    got = extract_embeddings(enc, ds, batch_size=4, chunk_size=8, cache=cache, backend=backend)
    assert got.meta["backend"] == "ray" and not backend.stats["weights_shipped"]  # re-created from "demo-cnn"
    assert len(backend.stats["pids"]) == 2 and backend.stats["units"] == 5  # 40 items / 8: both workers busy
    assert got.ids == local.ids and np.abs(got.vectors - local.vectors).max() <= 1e-5
    # lose one chunk and the completion record: only that chunk is computed again
    entry = cache.entry(got.key)
    (entry.path / "complete.json").unlink()
    entry.chunk_path(2).unlink()
    with pytest.warns(UserWarning, match="chunk-000002.npy is missing"):
        again = extract_embeddings(enc, ds, batch_size=4, chunk_size=8, cache=cache, backend=backend)
    assert backend.stats["units"] == 1 and not again.meta["from_cache"]
    assert np.array_equal(again.vectors, got.vectors)


def test_attack_with_a_killed_worker_gives_every_pair_once(backend, tmp_path):
    from medrep.models import load_encoder
    from medrep.robustness import run_attack

    torch.manual_seed(0)
    enc = load_encoder(TINY)  # random weights: the spec cannot reproduce them, so the workers get them shipped
    g = torch.Generator().manual_seed(5)
    n, bs = 48, 4
    ds = TensorDataset(torch.rand(n, 3, 32, 32, generator=g), [i % 3 for i in range(n)], ["a", "b", "c"], name="rand")
    kw = dict(steps=25, eps=[4 / 255], noise_sigma=0.01, noise_draws=2, n_boot=20, batch_size=bs, gallery_size=2)
    local = run_attack(enc, ds, **kw)

    out = tmp_path / "attack"
    killed: list[int] = []

    def kill_one_worker_mid_run():
        deadline = time.time() + 600  # Ray workers can take minutes to start on a busy 2-core machine
        while time.time() < deadline:
            done = list((out / "partial").glob("b*_e*.json")) if (out / "partial").exists() else []
            if backend.live_pids and done:
                killed.append(len(done))
                os.kill(backend.live_pids[0], signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker_mid_run, daemon=True)
    backend.close()  # a fresh pool: the killer waits for its pids
    killer.start()
    res = run_attack(enc, ds, out_dir=out, backend=backend, **kw)
    killer.join(5)
    print("ray stats after the kill:", {k: v for k, v in backend.stats.items() if k != "pids"}, "pids", backend.stats["pids"])
    n_batches = n // bs
    assert killed and killed[0] < n_batches, "the worker was not killed mid-run"
    assert backend.stats["weights_shipped"]
    assert backend.restarted or backend.stats["resubmitted"] > 0  # the killed worker's units were run again
    # every pair exactly once, in order, with the same targets as the local run
    assert res.source_ids == ds.ids and len(set(res.source_ids)) == n
    assert res.target_ids == local.target_ids
    assert res.per_eps[0].values.shape == local.per_eps[0].values.shape == (n, len(local.per_eps[0].columns))
    assert len(list((out / "partial").glob("b*_e*.json"))) == n_batches
    assert np.array_equal(res.per_eps[0].column("label"), local.per_eps[0].column("label"))
    for col in ("cosine_to_source_after", "linf", "psnr"):
        np.testing.assert_allclose(res.per_eps[0].column(col), local.per_eps[0].column(col), rtol=1e-4, atol=1e-4)


def test_explain_ray_matches_local(backend, demo_cnn_small):
    from medrep.explain.run import run_explain

    enc, ds = demo_cnn_small
    kw = dict(methods=["gradcam"], metrics=["pointing", "mass"], limit=10, batch_size=4, n_boot=20, gallery_size=3)
    local = run_explain(enc, ds, **kw)
    remote = run_explain(enc, ds, backend=backend, **kw)
    assert remote.ids == local.ids and remote.gallery["ids"] == local.gallery["ids"]
    for method in local.methods:  # gradcam and the random / centre baselines (seeded by batch index)
        for key, values in local.per_image[method].items():
            np.testing.assert_allclose(remote.per_image[method][key], values, atol=1e-5)
        np.testing.assert_allclose(remote.gallery["maps"][method], local.gallery["maps"][method], atol=1e-5)


def test_audit_runs_its_analyses_on_the_chosen_backend(monkeypatch, tmp_path):
    import medrep.audit
    from medrep.backends import current_backend
    from medrep.cli import main

    seen = []
    monkeypatch.setattr(medrep.audit, "load_config", lambda path: {"config": path})
    monkeypatch.setattr(medrep.audit, "run_audit", lambda config, out, **kw: seen.append(current_backend()))
    assert main(["audit", "cfg.yaml", "--out", str(tmp_path / "a"), "--backend", "ray", "--ray-workers", "1"]) == 0
    assert seen[0].name == "ray" and seen[0].workers == 1  # no cluster is needed until work is sent
    assert current_backend().name == "local"  # only inside the audit


def test_a_real_audit_on_ray_equals_the_local_audit(backend, tmp_path):
    """Not just dispatch: attacks, explanations and embeddings of one small audit run on the Ray actors."""
    from medrep.audit import run_audit
    from medrep.backends import use_backend

    config = {"title": "ray audit", "data": "demo?n_train=40&n_val=0&n_test=16&seed=4&size=32", "models": ["demo-cnn"],
              "text": None, "seed": 2, "n_boot": 50,
              "analyses": {"robustness": {"objectives": ["collide"], "eps": [4 / 255], "attack_steps": 2, "limit": 8, "batch_size": 4,
                                          "noise_sigma": [0.01], "noise_draws": 2},
                           "explain": {"methods": ["gradcam"], "metrics": ["pointing", "mass"], "limit": 8},
                           "features": {"k": 5, "shots": [1], "projections": ["tsne"], "n_permutations": 10},
                           "overlay": {"enabled": False}, "alignment": {"enabled": False}}}
    local = run_audit(config, tmp_path / "local", cache_dir=str(tmp_path / "c1"))
    with use_backend(backend):
        on_ray = run_audit(config, tmp_path / "ray", cache_dir=str(tmp_path / "c2"))
    assert [s["error"] for s in on_ray["sections"]] == [None] * 3
    assert (tmp_path / "ray" / "results.json").read_bytes() == (tmp_path / "local" / "results.json").read_bytes()
    assert local["scorecard"] == on_ray["scorecard"]
