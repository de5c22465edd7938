"""The feature figures of the README and the measured figures of the shipped demo models (phantoms, train 3000 → test 600):
kNN / linear probe / silhouette per model, and CKA / mutual kNN between them against their nulls."""
from __future__ import annotations

import pytest

from medrep.features.run import run_features


@pytest.fixture(scope="module")
def features(demo_vit, demo_cnn, phantoms):
    return run_features([demo_vit, demo_cnn], phantoms, projections=(), shots=(), n_permutations=50, n_boot=100)


@pytest.mark.parametrize("model, knn, probe, silhouette", [
    ("demo-vit", 0.998, 0.998, 0.899),  # kNN / probe: README; silhouette: measured on the shipped model
    ("demo-cnn", 1.000, 1.000, 0.875),
])
def test_probes_and_separability_match_the_readme(features, model, knn, probe, silhouette):
    m = features.models[model]["metrics"]
    assert m["knn_accuracy"].value == pytest.approx(knn, abs=0.005)
    assert m["linear_probe_accuracy"].value == pytest.approx(probe, abs=0.005)
    assert m["silhouette"].value == pytest.approx(silhouette, abs=0.02)


def test_the_two_models_agree_far_above_their_permutation_nulls(features):
    (pair,) = features.pairs
    assert pair.cka.value == pytest.approx(0.958, abs=0.01)
    assert pair.cka.value > 10 * pair.extra["cka_null_q95"]
    assert pair.cka_p_value <= 1 / 51 + 1e-9  # the floor for 50 permutations: no permutation came close
    assert pair.mutual_knn.value > 2 * pair.extra["mutual_knn_null_q95"]
    assert pair.mutual_knn_p_value <= 1 / 51 + 1e-9
