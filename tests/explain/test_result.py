"""ExplainResult's table says which interval is which: Wilson for the pointing game's 0/1 hits, a bootstrap for
the other scores."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("metrics, legend", [
    (["pointing", "deletion_auc"], "95% CI over images: Wilson score interval for pointing (a 0/1 hit per image), "
                                   "percentile bootstrap for the others, 200 resamples"),
    (["pointing"], "95% CI over images: Wilson score interval for pointing (a 0/1 hit per image)"),
    (["mass", "deletion_auc"], "95% bootstrap CI over images, 200 resamples")])
def test_explain_legend_says_which_interval_is_which(metrics, legend):
    from medrep.explain.run import ExplainResult
    from medrep.results import Metric

    res = ExplainResult(model="m", data={}, target="class", methods=["gradcam"], metric_names=metrics,
                        metrics={"gradcam": {k: Metric(0.5, 0.25, 0.75, 4) for k in metrics}}, per_image={},
                        ids=["a", "b", "c", "d"], mask_area={}, settings={"bootstrap": {"n_boot": 200}})
    assert res.interval_legend() == legend
    assert f"mean [{legend}]" in res.format_table()
