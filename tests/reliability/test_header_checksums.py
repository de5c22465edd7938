"""The checksum of a stored array covers the .npy file as written, header included: a damaged dtype, byte
order or shape in a cache chunk or a partial result is caught and recomputed, never read back as other
numbers.  Non-finite values read back from the cache mean a damaged entry (recomputed), not a bad model;
temporaries left by a killed writer are removed when the entry or partial store is next opened."""
from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest

from medrep.errors import MedrepError
from medrep.features import Embeddings
from medrep.features.cache import EmbeddingCache
from medrep.io import atomic_write, load_array_checked, remove_stale_temporaries, save_array_checked
from medrep.partial import PartialStore


def edit_header(path, old: str, new: str) -> None:
    """Rewrite a descriptor of the .npy header in place (same length: the file stays loadable)."""
    raw = path.read_bytes()
    header_end = raw.index(b"\n") + 1
    assert len(old) == len(new) and old.encode() in raw[:header_end], raw[:header_end]
    path.write_bytes(raw[:header_end].replace(old.encode(), new.encode()) + raw[header_end:])


HEADER_EDITS = {"<f4 → <i4": ("'<f4'", "'<i4'"), "<f4 → >f4": ("'<f4'", "'>f4'"),
                "shape (4, 6) → (6, 4)": ("(4, 6)", "(6, 4)")}


@pytest.mark.parametrize("edit", list(HEADER_EDITS))
def test_an_edited_header_fails_the_checksum(tmp_path, edit):
    array = np.random.default_rng(0).standard_normal((4, 6)).astype("<f4")
    path = tmp_path / "a.npy"
    digest = save_array_checked(path, array)
    np.testing.assert_array_equal(load_array_checked(path, digest), array)
    edit_header(path, *HEADER_EDITS[edit])
    assert not np.array_equal(np.load(path), array)  # numpy alone reads other numbers without complaint
    with pytest.raises(MedrepError, match="checksum mismatch") as info:
        load_array_checked(path, digest)
    assert info.value.where == str(path)


def test_the_digest_is_that_of_the_file_bytes(tmp_path):
    from medrep.io import digest_file

    path = tmp_path / "a.npy"
    digest = save_array_checked(path, np.arange(10, dtype=np.float64).reshape(2, 5))
    assert digest == digest_file(path)


# -- through `medrep extract`: a cache chunk -----------------------------------------------------------
def extract_args(cli, out, cache):
    return ["extract", "--model", cli.TINY, "--data", cli.DATA, "--split", "test", "--batch-size", "4",
            "--chunk-size", "8", "--out", str(out), "--cache-dir", str(cache), "--quiet"]


@pytest.fixture(scope="module")
def extracted(cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("header-ref")
    assert cli.in_process(extract_args(cli, root / "out", root / "cache")) == 0
    [entry] = [p for p in (root / "cache").glob("*/*") if p.is_dir()]
    return Embeddings.from_parquet(root / "out" / "embeddings.parquet"), root / "cache", entry.relative_to(root / "cache")


def _rerun_warns_about(cli, args, victim) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.in_process(args) == 0
    messages = [str(w.message) for w in caught]
    assert any(str(victim) in m and "recomputed" in m for m in messages), messages
    return messages


@pytest.mark.parametrize("edit", ["<f4 → <i4", "<f4 → >f4"])
def test_cache_chunk_with_an_edited_header_is_recomputed(cli, extracted, tmp_path, edit):
    ref, ref_cache, entry = extracted
    cache = tmp_path / "cache"
    shutil.copytree(ref_cache, cache)
    victim = cache / entry / "chunk-000001.npy"
    edit_header(victim, *HEADER_EDITS[edit])
    _rerun_warns_about(cli, extract_args(cli, tmp_path / "out", cache), victim)
    got = Embeddings.from_parquet(tmp_path / "out" / "embeddings.parquet")
    np.testing.assert_array_equal(got.vectors, ref.vectors)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["output"]["from_cache"] is False


def test_non_finite_values_in_a_cache_chunk_mark_it_damaged_not_the_model(cli, extracted, tmp_path, capsys):
    """A chunk that holds NaN with a matching record (as an older medrep cached a NaN-producing model's
    output) is recomputed from the model, which is fine; the run is not failed on the model's account."""
    ref, ref_cache, entry = extracted
    cache = tmp_path / "cache"
    shutil.copytree(ref_cache, cache)
    victim = cache / entry / "chunk-000002.npy"
    record = victim.with_suffix(".json")
    poisoned = np.load(victim)
    poisoned[0, 0] = np.nan
    meta = json.loads(record.read_text())
    meta["digest"] = save_array_checked(victim, poisoned)
    record.write_text(json.dumps(meta))
    _rerun_warns_about(cli, extract_args(cli, tmp_path / "out", cache), victim)
    assert "NaN" not in capsys.readouterr().err
    np.testing.assert_array_equal(Embeddings.from_parquet(tmp_path / "out" / "embeddings.parquet").vectors, ref.vectors)


def test_non_finite_chunks_are_never_cached(tmp_path):
    entry = EmbeddingCache(tmp_path).entry("cd" + "0" * 38)
    entry.write_chunk(0, np.array([[1.0, np.inf]], np.float32), ["a"])
    entry.write_chunk(1, np.array([[1.0, 2.0]], np.float32), ["b"])
    assert not entry.chunk_path(0).exists() and entry.read_chunk(0, ["a"]) is None
    np.testing.assert_array_equal(entry.read_chunk(1, ["b"]), [[1.0, 2.0]])


# -- through `medrep attack` / `medrep explain --resume`: a partial result ---------------------------------
def attack_args(cli, out, cache):
    return ["attack", "--model", cli.TINY, "--data", cli.DATA, "--split", "test", "--limit", "8", "--batch-size", "4",
            "--objective", "push", "--eps", "4/255", "--attack-steps", "2", "--noise-draws", "2", "--noise-sigma", "0.02",
            "--seed", "7", "--out", str(out), "--cache-dir", str(cache), "--quiet"]


def explain_args(cli, out, cache):
    return ["explain", "--model", cli.TINY, "--data", cli.DATA, "--split", "test", "--batch-size", "4",
            "--methods", "gradcam", "--metrics", "pointing,iou", "--limit", "8", "--seed", "5",
            "--out", str(out), "--cache-dir", str(cache), "--quiet"]


@pytest.mark.parametrize("command", ["attack", "explain"])
def test_partial_with_an_edited_header_is_recomputed_on_resume(cli, tmp_path, monkeypatch, command):
    import medrep.partial

    args = {"attack": attack_args, "explain": explain_args}[command]
    out, cache = tmp_path / "out", tmp_path / "cache"
    monkeypatch.setattr(medrep.partial, "discard_partials", lambda out_dir: None)  # keep them, as a killed run does
    assert cli.in_process(args(cli, out, cache)) == 0
    reference = (out / "results.json").read_bytes()
    edited = []
    for npy in sorted((out / "partial").glob("*.npy")):
        header = npy.read_bytes()[:128]
        for old, new in (("'<f8'", "'>f8'"), ("'<f4'", "'>f4'")):
            if old.encode() in header and np.load(npy).size:
                edit_header(npy, old, new)
                edited.append(npy)
                break
    assert edited, "no float partial to damage"
    (out / "results.json").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.in_process(args(cli, out, cache) + ["--resume"]) == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "recomputing damaged partial" in messages and "checksum mismatch" in messages, messages
    assert (out / "results.json").read_bytes() == reference


# -- leftovers of a killed writer ------------------------------------------------------------------------
def _leftovers(folder, live_pid):
    from medrep.io import _HOST

    folder.mkdir(parents=True, exist_ok=True)
    names = {"dead": f".chunk-000000.npy.pid999999999-{_HOST}.k1llq.tmp",  # beyond any pid_max: not running
             "older medrep": ".chunk-000001.npy.x7z_ab.tmp",
             "this process, finished": f".chunk-000002.json.pid{os.getpid()}-{_HOST}.dn3ab.tmp",
             "live writer": f".chunk-000003.npy.pid{live_pid}-{_HOST}.l1v3q.tmp",
             "other machine, recent": ".chunk-000004.npy.pid1-00000000.f0r3n.tmp"}
    for name in names.values():
        (folder / name).write_bytes(b"half written")
    return names


def test_leftover_temporaries_are_removed_when_the_cache_entry_is_opened(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = "ef" + "1" * 38
    names = _leftovers(tmp_path / key[:2] / key, os.getppid())
    entry = cache.entry(key)
    left = sorted(p.name for p in entry.path.iterdir())
    assert left == sorted([names["live writer"], names["other machine, recent"]])


def test_leftover_temporaries_are_removed_when_the_partial_store_is_opened(tmp_path):
    names = _leftovers(tmp_path / "partial", os.getppid())
    PartialStore(tmp_path, "digest", resume=False)
    left = sorted(p.name for p in (tmp_path / "partial").iterdir())
    assert left == sorted([names["live writer"], names["other machine, recent"], "run.json"])


def test_a_temporary_being_written_by_this_process_is_kept(tmp_path):
    seen = []

    def writer(tmp):
        with open(tmp, "w") as f:
            f.write("x")
        seen.extend(remove_stale_temporaries(tmp_path))

    atomic_write(tmp_path / "out.txt", writer)
    assert seen == [] and (tmp_path / "out.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
