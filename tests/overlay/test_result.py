"""The overlay result's reading tells a word's presence (every word flips answers the same way) from its meaning
(answers move toward the written class) and from no effect."""


def _word(flip, to, target=None, toward=None):
    from medrep.results import Metric

    metrics = {"probe_flip_rate": Metric(flip, None, None, 100)}
    if toward is not None:
        metrics["probe_to_target_rate"] = Metric(toward, None, None, 100)
    return {"metrics": metrics, "probe_flips_to": to, "target_class": target}


def test_readings_tell_presence_from_meaning():
    from medrep.overlay import OverlayResult

    classes = ["normal", "benign", "malignant"]
    presence = {"normal": _word(0.69, {"normal": 0, "benign": 0, "malignant": 69}, "normal", 0.0),
                "benign": _word(0.69, {"normal": 0, "benign": 0, "malignant": 69}, "benign", 0.0),
                "malignant": _word(0.69, {"normal": 0, "benign": 0, "malignant": 69}, "malignant", 1.0)}
    meaning = {"normal": _word(0.4, {"normal": 40, "benign": 0, "malignant": 0}, "normal", 0.9),
               "benign": _word(0.5, {"normal": 0, "benign": 50, "malignant": 0}, "benign", 0.95)}
    inert = {"normal": _word(0.01, {"normal": 1, "benign": 0, "malignant": 0}, "normal", 0.5)}
    r = OverlayResult(classes=classes, models={"a": {"words": presence}, "b": {"words": meaning}, "c": {"words": inert}})
    a, b, c = r.readings()
    assert a.startswith("a: writing a word flips 69% ") and "100% of them to 'malignant' whatever the word says" in a
    assert b.startswith("b: writing a class name flips 40%–50% ") and "toward the written class" in b
    assert c == "c: written words barely move its answers (probe flip rate at most 1%)."
