"""The index benchmark's CheXpert-format tree is what the chexpert recipe reads (a small one here)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import dataset_index  # noqa: E402

from medrep.data import load_dataset  # noqa: E402


def test_benchmark_tree_reads_as_chexpert(tmp_path):
    root = dataset_index.build_tree(tmp_path, 300)
    ds = load_dataset(f"chexpert:{root}")
    assert len(ds.split("train")) == 300 and len(ds.split("valid")) == 1
    assert ds.findings == dataset_index.FINDINGS
    fm = ds.split("train").finding_matrix
    assert np.isnan(fm).any() and (fm == 1).any() and (fm == 0).any()  # uncertain ignored, blanks negative
    n_patients = len(set(ds.split("train").patients.tolist()))
    assert 300 / 5 < n_patients < 300 / 2  # several images per patient, as in CheXpert
    index = dataset_index.measure_index(root)
    assert index["rows"] == 301 and index["findings"] == 14 and index["peak_bytes"] > 0
