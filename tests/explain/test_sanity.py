"""Sanity checks: the similarities against scipy / scikit-image, the randomisation units, the caller's model
untouched, seeded re-draws, the pass rule, and the run-level record."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medrep.explain.sanity import (randomisation_units, randomise_unit, sanity_passed, model_copy, other_classes)
from medrep.explain.similarity import map_similarities, spearman, ssim, topk_overlap


def test_spearman_matches_scipy_with_ties_and_signs():
    from scipy.stats import spearmanr

    torch.manual_seed(0)
    a = torch.randn(4, 12, 12)
    b = a + 0.8 * torch.randn(4, 12, 12)
    a[1] = torch.round(a[1] * 2)  # many ties
    b[2] = -a[2]  # perfectly anti-correlated
    got = spearman(a, b).numpy()
    want = [spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic for i in range(4)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got[2] == pytest.approx(-1.0)
    sims = map_similarities(a, b, a, b)
    want_abs = [spearmanr(a[i].abs().flatten().numpy(), b[i].abs().flatten().numpy()).statistic for i in range(4)]
    np.testing.assert_allclose(sims["spearman_abs"].numpy(), want_abs, atol=1e-12)
    # a constant map shares no ordering: 0, not NaN
    assert float(spearman(torch.zeros(1, 5, 5), torch.rand(1, 5, 5))[0]) == 0.0


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    torch.manual_seed(1)
    a = torch.rand(3, 20, 24)
    b = (a + 0.3 * torch.rand(3, 20, 24)).clamp(0, 1)
    b[2] = torch.rand(20, 24)
    got = ssim(a, b).numpy()
    want = [structural_similarity(a[i].double().numpy(), b[i].double().numpy(), data_range=1.0) for i in range(3)]
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert float(ssim(a[:1], a[:1])[0]) == pytest.approx(1.0)


def test_topk_overlap_by_hand():
    a = torch.arange(100, dtype=torch.float32).view(1, 10, 10)  # top 10%: pixels 90…99
    b = a.clone()
    b[0, 9, :5] = -1  # five of a's top ten leave b's top ten
    assert float(topk_overlap(a, a, 10)[0]) == 1.0
    assert float(topk_overlap(a, b, 10)[0]) == pytest.approx(0.5)


def test_units_run_from_the_head_down_to_the_embedding(vit64):
    units = randomisation_units(vit64)
    assert [u.name for u in units] == ["output", "block 1", "block 0", "embedding"]
    assert "head.weight" in units[0].parameters and "norm.weight" in units[0].parameters
    assert any(p.startswith("patch_embed.") for p in units[-1].parameters)
    assert {"cls_token", "pos_embed"} <= set(units[-1].parameters)
    covered = [p for u in units for p in u.parameters]
    assert sorted(covered) == sorted(n for n, _ in vit64.module.named_parameters())  # every parameter, once


def test_a_unit_is_redrawn_the_same_way_from_the_same_seed(vit64):
    unit = randomisation_units(vit64)[1]
    a, b = model_copy(vit64), model_copy(vit64)
    randomise_unit(a.module, unit, 5)
    randomise_unit(b.module, unit, 5)
    for name in unit.parameters:
        pa, pb, orig = a.module.get_parameter(name), b.module.get_parameter(name), vit64.module.get_parameter(name)
        assert torch.equal(pa, pb)
        if pa.ndim >= 2:
            assert not torch.equal(pa, orig)


def test_other_classes_never_repeat_the_label():
    labels = torch.tensor([0, 1, 2, 2, 1, 0] * 20)
    other = other_classes(labels, 3, seed=1)
    assert (other != labels).all() and set(other.tolist()) == {0, 1, 2}


def test_pass_rule_needs_the_interval_below_the_threshold():
    def step(value, high):
        return [{"spearman_abs": {"value": value, "low": value - 0.1, "high": high, "n": 8}}]

    assert sanity_passed(step(0.2, 0.4), 0.5) is True
    assert sanity_passed(step(0.4, 0.6), 0.5) is False  # the mean is below, the interval is not
    assert sanity_passed(step(0.7, 0.8), 0.5) is False
    assert sanity_passed(None, 0.5) is None


def test_run_leaves_the_users_module_bit_for_bit_unchanged(vit64, small_phantoms, tmp_path):
    from medrep.explain.outputs import write_explain_outputs
    from medrep.explain.run import run_explain

    before = {k: v.detach().clone() for k, v in vit64.state_dict().items()}
    digest = vit64.weights_digest()
    res = run_explain(vit64, small_phantoms.split("test"), methods=["gradcam", "chefer"], metrics=["pointing"], limit=6,
                      batch_size=3, n_boot=50, sanity=("cascading", "independent", "logit"), sanity_images=4)
    after = vit64.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert vit64.weights_digest() == digest
    s = res.to_dict()["by_method"]["gradcam"]["sanity"]
    assert [st["unit"] for st in s["cascading"]] == ["output", "block 1", "block 0", "embedding"]
    assert [st["blocks_randomised"] for st in s["cascading"]] == [1, 2, 3, 4]
    for st in s["cascading"] + s["independent"]:
        assert {"spearman", "spearman_abs", "ssim", "topk_overlap"} <= set(st)
        assert st["spearman_abs"]["low"] <= st["spearman_abs"]["value"] <= st["spearman_abs"]["high"]
    # the independent test re-draws the last unit exactly as the cascading test's first step
    assert s["independent"][0]["spearman_abs"] == s["cascading"][0]["spearman_abs"]
    assert s["passed"] in (True, False) and "logit" in s
    assert "random" not in res.sanity["methods"] and "center" not in res.sanity["methods"]
    assert res.verdicts["gradcam"]["depends_on_model"]["answer"] == ("yes" if s["passed"] else "no")
    paths = write_explain_outputs(res, tmp_path)
    assert paths["sanity"].stat().st_size > 5_000
