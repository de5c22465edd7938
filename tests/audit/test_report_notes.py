"""Where a figure in the audit report could be read as something it is not, the report says so beside it: a probe
standing in for a head that does not fit, suspected gradient masking, a positive control that does not stand out,
maps that explain an embedding rather than a class score, intervals of different kinds; captions are words."""
from __future__ import annotations

from types import SimpleNamespace

from medrep.audit.runner import (_accuracy_note, _caption, _explain_target_note, _features_interval_note,
                                 _weak_control_note)


def _metric(v, low=None, high=None):
    return {"value": v, "low": v if low is None else low, "high": v if high is None else high, "n": 16}


def _attack(primary="head", head=None, masked=()):
    summaries = [{"eps": e, "attacks": {"gradient_masking_suspected": e in masked}} for e in (2 / 255, 8 / 255)]
    return SimpleNamespace(primary=primary, head=head, summaries=summaries, config={"norm": "linf"})


def test_a_fitting_head_and_no_masking_need_no_note():
    assert _accuracy_note(_attack()) == ""


def test_a_probe_standing_in_for_the_head_is_named_with_the_reason():
    head = {"fits": False, "reason": "the head has 1000 outputs, the data 3 classes"}
    note = _accuracy_note(_attack("probe", head))
    assert note.startswith("Accuracy of a linear probe") and "not of the model's own head" in note
    assert "the head has 1000 outputs, the data 3 classes" in note
    assert "has no classification head" in _accuracy_note(_attack("probe", None))


def test_gradient_masking_is_said_with_its_eps():
    note = _accuracy_note(_attack(masked=(8 / 255,)))
    assert "Gradient masking suspected at ε = 8/255" in note and "2/255" not in note and "overstate" in note


def test_a_control_that_does_not_stand_out_is_a_weak_control():
    models = ["demo-vit", "demo-cnn"]
    lowest = {"demo-vit": {"metric": _metric(0.1, 0.02, 0.3), "value": 0.1},
              "demo-cnn": {"metric": _metric(0.2, 0.1, 0.4), "value": 0.2},
              "robust": {"metric": _metric(0.9, 0.75, 0.97), "value": 0.9}}
    assert _weak_control_note("robust", lowest, models) == ""  # 0.75 clears the others' 0.4
    lowest["robust"] = {"metric": _metric(0.5, 0.35, 0.65), "value": 0.5}  # reaches demo-cnn's interval
    note = _weak_control_note("robust", lowest, models)
    assert note.startswith("Weak control: robust's lowest attacked accuracy (0.500)")
    assert _weak_control_note("absent", lowest, models) == ""


def test_maps_of_an_embedding_target_say_what_they_explain():
    class Headless:
        has_head = False

    class Imagenet:
        has_head = True

        def head_fit(self, classes):
            return SimpleNamespace(fits=False, reason="1000 outputs for 3 classes")

    assert _explain_target_note("class", Headless(), ["a"]) == ""
    assert "mean embedding" in _explain_target_note("embedding", Headless(), ["a"])
    assert "no classification head" in _explain_target_note("embedding", Headless(), ["a"])
    assert "1000 outputs for 3 classes" in _explain_target_note("embedding", Imagenet(), ["a", "b", "c"])


def test_features_intervals_name_their_kinds_and_patient_clustering():
    settings = {"intervals": "95%: bootstrap over items (accuracies), delete-half jackknife (silhouette)",
                "n_patients": 40, "n_images": 120}
    note = _features_interval_note(settings)
    assert note.startswith("95% intervals: bootstrap over items (accuracies), delete-half jackknife (silhouette).")
    assert "resample patients whole (40 patients for 120 test images)" in note
    assert "patients" not in _features_interval_note({**settings, "n_patients": 120})  # one image each: no clustering


def test_figure_captions_are_words():
    assert _caption("tsne:demo-vit").startswith("t-SNE of demo-vit's test embeddings")
    assert _caption("umap:demo-cnn").startswith("UMAP of demo-cnn's test embeddings")
    assert _caption("cka").startswith("CKA similarity between the models' embeddings")
    assert _caption("centroid_cosine:demo-vit") == "cosine similarity between the class centroids of demo-vit's embeddings"
    assert _caption("overlay_flip_rates").startswith("text-overlay test:")
    assert _caption("accuracy_vs_anchors") == "accuracy against the number of anchor pairs"
    assert _caption("something_new") == "something new"  # an unknown key still reads without underscores
