"""One verdict per method, from the figures already computed — three questions, each answered yes / no /
not run with the numbers behind it, and a plain sentence:

* **localises**: the lower end of the method's 95% interval on the pointing game (AUPRC when the pointing
  game was not run) lies above the centre prior's value on the same images;
* **depends on the model**: it passes cascading model-parameter randomisation (Spearman of |map| after every
  unit is randomised below the threshold, the interval's upper end too);
* **faithful**: removing its most relevant pixels first lowers the target score faster than a random ordering
  (the ``random`` map): the upper end of its deletion AUC interval, and of its ROAD MoRF mean when ROAD ran,
  lie below the random ordering's value.

The ``center`` map is the baseline itself: ``baseline: true`` and no verdict.  The ``random`` map is a
baseline too, judged on localisation only (it is the random ordering the faithfulness test compares with).
"""
from __future__ import annotations

from typing import Any, Mapping

from medrep.results import Metric

YES, NO, NOT_RUN = "yes", "no", "not run"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _metric(metrics: Mapping[str, Metric], key: str) -> Metric | None:
    m = metrics.get(key)
    return m if m is not None and m.value == m.value else None


def localises(metrics: Mapping[str, Mapping[str, Metric]], method: str, note: str | None = None) -> dict[str, Any]:
    """``note``: why localisation was not run at all (e.g. the data has no masks)."""
    key = "pointing" if "pointing" in metrics.get(method, {}) else "auprc"
    if note is not None:
        return {"answer": NOT_RUN, "metric": key, "reason": note}
    own, centre = _metric(metrics.get(method, {}), key), _metric(metrics.get("center", {}), key)
    if own is None or centre is None or own.low is None:
        return {"answer": NOT_RUN, "metric": key}
    return {"answer": YES if own.low > centre.value else NO, "metric": key, "method": own.to_dict(),
            "center": centre.value}


def depends_on_model(sanity: Mapping[str, Any] | None, method: str) -> dict[str, Any]:
    entry = (sanity or {}).get("methods", {}).get(method)
    if not entry or entry.get("passed") is None:
        return {"answer": NOT_RUN}
    last = entry["cascading"][-1]
    return {"answer": YES if entry["passed"] else NO, "similarity": entry["similarity"],
            "after_full_randomisation": last[entry["similarity"]], "threshold": entry["threshold"]}


def faithful(metrics: Mapping[str, Mapping[str, Metric]], method: str) -> dict[str, Any]:
    checks = {}
    for key in ("deletion_auc", "road_morf"):
        own, rnd = _metric(metrics.get(method, {}), key), _metric(metrics.get("random", {}), key)
        if own is not None and rnd is not None and own.high is not None:
            checks[key] = {"better": bool(own.high < rnd.value), "method": own.to_dict(), "random": rnd.value}
    if not checks:
        return {"answer": NOT_RUN}
    return {"answer": YES if all(c["better"] for c in checks.values()) else NO, **checks}


def sentence(method: str, verdict: Mapping[str, Any]) -> str:
    """A short reading of the three answers, e.g. 'gradcam finds the lesion in 42% of images ... do not trust it'."""
    loc, dep, fth = verdict["localises"], verdict["depends_on_model"], verdict["faithful"]
    parts = []
    if loc["answer"] != NOT_RUN:
        what = "finds the lesion in" if loc["metric"] == "pointing" else "has a lesion AUPRC of"
        parts.append(f"{method} {what} {_pct(loc['method']['value'])} of images (centre prior {_pct(loc['center'])})"
                     if loc["metric"] == "pointing" else
                     f"{method} {what} {loc['method']['value']:.2f} (centre prior {loc['center']:.2f})")
    else:
        why = loc.get("reason", "")
        parts.append(f"{method} was not scored on localisation" + (f" ({why.removeprefix('not run ').strip('()')})" if why else ""))
    if dep["answer"] == YES:
        parts.append(f"its map changes when the model is randomised (Spearman {dep['after_full_randomisation']['value']:.2f})")
    elif dep["answer"] == NO:
        after, limit = dep["after_full_randomisation"], dep["threshold"]
        if after["value"] >= limit:
            parts.append(f"its map barely changes when the model is randomised (Spearman {after['value']:.2f})")
        else:
            parts.append(f"its map is not clearly different once the model is randomised (Spearman {after['value']:.2f}, "
                         f"95% interval up to {after['high']:.2f}, threshold {limit:g})")
    if fth["answer"] != NOT_RUN:
        parts.append("deleting its top pixels lowers the score faster than a random order" if fth["answer"] == YES
                     else "deleting its top pixels does not lower the score faster than a random order")
    answers = [loc["answer"], dep["answer"], fth["answer"]]
    if NO in answers:
        advice = "do not trust it for this model"
    elif NOT_RUN in answers:
        advice = "no failure seen in what was run"
    else:
        advice = "it passes every check for this model"
    return "; ".join(parts) + f": {advice}."


def verdicts(methods: list[str], metrics: Mapping[str, Mapping[str, Metric]], baselines: tuple[str, ...],
             sanity: Mapping[str, Any] | None, localisation_note: str | None = None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        if m == "center":
            out[m] = {"baseline": True, "sentence": "center is a baseline (the centre prior): a method localises only "
                                                    "where it beats it."}
            continue
        v = {"baseline": m in baselines, "localises": localises(metrics, m, localisation_note),
             "depends_on_model": depends_on_model(sanity, m) if m not in baselines else {"answer": NOT_RUN},
             "faithful": faithful(metrics, m) if m != "random" else {"answer": NOT_RUN}}
        v["sentence"] = sentence(m, v)
        out[m] = v
    return out
