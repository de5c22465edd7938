"""`run_features`: probes, separability, projections and cross-model similarity, all from cached
embeddings, on the same items and splits for every model (and layer)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from medrep.configs import replace
from medrep.errors import MedrepError, Param
from medrep.features.config import FeaturesConfig
from medrep.embeddings.extract import Embeddings, extract_embeddings
from medrep.intervals import half_sample_interval, is_clustered
from medrep.features.neighbours import l2_normalise
from medrep.features.probes import adapt_k, adapt_shots, few_shot_accuracy, knn_accuracy, linear_probe_scores
from medrep.features.projection import project_2d
from medrep.features.result import FeaturesResult
from medrep.features.separability import (calinski_harabasz, centroid_cosine_matrix, davies_bouldin, fisher_ratio,
                                          pairwise_distances, silhouette_samples_from_distances)
from medrep.features.similarity import compare_spaces
from medrep.progress import progress_bar
from medrep.results import Metric

@dataclass
class RepresentationData:
    """One model (at one layer): its train and test embeddings from the cache."""

    name: str
    train: Embeddings
    test: Embeddings


def train_test_splits(dataset, train_split: str = "train", test_split: str = "test", limit: int | None = None,
                      seed: int = 0):
    """The two splits every model is compared on; each optionally limited to ``limit`` items (seeded).  Data
    without any splits is divided 70/30 (seeded, stratified, whole patients or source files on one side)."""
    available = list(getattr(dataset, "splits", []) or [])
    if not available and len(dataset):
        from medrep.data.autosplit import grouped_split

        first, second, _ = grouped_split(dataset, seed=seed)
        train, test = dataset.subset(first), dataset.subset(second)
        if limit:
            train, test = train.limit(limit, seed=seed), test.limit(limit, seed=seed)
        return train, test
    missing = [s for s in (train_split, test_split) if s not in available]
    if missing:
        raise MedrepError(f"needs a {' and a '.join(repr(s) for s in missing)} split to fit probes on one and test on the "
                          f"other (available: {', '.join(available) or 'none'})", where=getattr(dataset, "name", Param("data")))
    train, test = dataset.split(train_split), dataset.split(test_split)
    if limit:
        train, test = train.limit(limit, seed=seed), test.limit(limit, seed=seed)
    return train, test


def check_unique_encoders(encoders: Sequence[Any]) -> None:
    seen: dict[str, str] = {}
    for enc in encoders:
        for key in (enc.name, enc.fingerprint):
            if key in seen:
                raise MedrepError(f"model {enc.name!r} is listed twice (same {'name' if key == enc.name else 'weights'} "
                                  f"as {seen[key]!r}); list each model once", where=Param("model"))
            seen[key] = enc.name


def representation_name(encoder, layer: str | None) -> str:
    return encoder.name if layer is None else f"{encoder.name}@{layer}"


def load_representations(encoders, train, test, layers: Sequence[str | None] = (None,), pool: str | None = None,
                         batch_size: int = 64, cache=None) -> list[RepresentationData]:
    reps = []
    for enc in encoders:
        for layer in layers:
            name = representation_name(enc, layer)
            tr = extract_embeddings(enc, train, layer=layer, pool=pool, batch_size=batch_size, cache=cache,
                                    description=f"{name}: train embeddings").check_finite()
            te = extract_embeddings(enc, test, layer=layer, pool=pool, batch_size=batch_size, cache=cache,
                                    description=f"{name}: test embeddings").check_finite()
            if tr.vectors.ndim != 2:
                raise MedrepError(f"needs pooled (N, D) embeddings, got shape {tr.vectors.shape}", where=Param("pool"))
            reps.append(RepresentationData(name, tr, te))
    return reps


def check_split_labels(train_y: np.ndarray, test_y: np.ndarray, classes: list[str], where: str) -> None:
    tr = np.unique(train_y)
    if tr.size < 2:
        raise MedrepError(f"the train split holds only one class ({classes[int(tr[0])] if tr.size else 'none'}); "
                          "probes and separability need at least two", where=where)
    if np.unique(test_y).size < 2:
        raise MedrepError("the test split holds only one class; accuracy and AUC would be meaningless", where=where)
    unseen = sorted(set(np.unique(test_y).tolist()) - set(tr.tolist()))
    if unseen:
        raise MedrepError(f"test classes {', '.join(classes[i] for i in unseen)} never occur in the train split", where=where)


def model_metrics(train_x, train_y, test_x, test_y, k: int = 20, shots: Sequence[int] = (1, 5, 10), n_draws: int = 10,
                  n_boot: int = 200, seed: int = 0, max_silhouette: int = 2000,
                  per_item: dict[str, Any] | None = None,
                  patients: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
                  ) -> tuple[dict[str, Metric], np.ndarray]:
    """Every per-model metric (with 95% intervals) and the centroid cosine matrix, from plain arrays.

    Probes are fitted on train and scored on test; the geometry is measured on the L2-normalised
    test embeddings (cosine geometry, as in the kNN; comparable across models of different scale).
    ``per_item``, when given, receives the probes' per-test-item outputs (for the subgroup breakdown).
    ``patients`` (patient id per train item, per test item): few-shot draws take each shot from another
    patient, and the probe intervals are cluster bootstraps over the test patients.
    """
    metrics: dict[str, Metric] = {}
    train_patients, groups = patients
    knn = knn_accuracy(train_x, train_y, test_x, test_y, k=k, n_boot=max(n_boot, 1000), seed=seed, groups=groups)
    metrics["knn_accuracy"] = knn.accuracy
    lin = linear_probe_scores(train_x, train_y, test_x, test_y, n_boot=max(n_boot, 1000), n_boot_auc=n_boot, seed=seed,
                              groups=groups)
    metrics["linear_probe_accuracy"] = lin.accuracy
    metrics["linear_probe_auc"] = lin.auc
    if per_item is not None:
        per_item.update(knn_predictions=knn.predictions, linear_predictions=lin.predictions, linear_proba=lin.proba,
                        linear_classes=lin.classes)
    for s in shots:
        fs = few_shot_accuracy(train_x, train_y, test_x, test_y, shots=s, n_draws=n_draws, seed=seed,
                               groups=train_patients)
        if fs is not None:
            metrics[f"few_shot_{s}_accuracy"] = fs
    xn = l2_normalise(test_x).astype(np.float64)
    y = np.asarray(test_y)
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(len(y), size=max_silhouette, replace=False)) if len(y) > max_silhouette else np.arange(len(y))
    dist = pairwise_distances(xn[sub])
    ys = y[sub]
    metrics["silhouette"] = half_sample_interval(
        lambda i: _finite_or_nan(lambda: silhouette_samples_from_distances(dist[np.ix_(i, i)], ys[i]).mean()),
        len(sub), n_draws=n_boot, seed=seed)
    # Geometry intervals by half-sampling without replacement: a with-replacement bootstrap puts
    # duplicate rows (zero distances) in every resample, which biases these statistics.
    n, k_cls = len(y), len(np.unique(y))
    metrics["davies_bouldin"] = half_sample_interval(lambda i: _finite_or_nan(lambda: davies_bouldin(xn[i], y[i])), n,
                                                     n_draws=n_boot, seed=seed)
    # CH grows with N through (N − K); rescale half-sample values to N so their spread is comparable
    metrics["calinski_harabasz"] = half_sample_interval(
        lambda i: _finite_or_nan(lambda: calinski_harabasz(xn[i], y[i])) * (n - k_cls) / max(len(i) - k_cls, 1), n,
        n_draws=n_boot, seed=seed)
    metrics["fisher_ratio"] = half_sample_interval(lambda i: _finite_or_nan(lambda: fisher_ratio(xn[i], y[i])), n,
                                                   n_draws=n_boot, seed=seed)
    return metrics, centroid_cosine_matrix(xn, y)


def _patients_of(part, ids: list[str]) -> np.ndarray | None:
    """Patient id per embedded item of ``part`` (None without patient ids)."""
    patients = part.patients
    if patients is None:
        return None
    if list(part.ids) == list(ids):
        return np.asarray(patients, dtype=object)
    by_id = dict(zip(part.ids, patients.tolist()))
    return np.array([by_id[i] for i in ids], dtype=object)


def _finite_or_nan(fn) -> float:
    # a resample can lose a class; that draw is dropped from the interval rather than failing the run
    try:
        return float(fn())
    except MedrepError:
        return float("nan")


def run_features(encoders: Sequence[Any], dataset, config: FeaturesConfig | None = None, *, cache=None,
                 subgroups=None, **settings: Any) -> FeaturesResult:
    """Per model (and layer): kNN / linear / few-shot probes, separability, 2-D projections; per pair:
    CKA and mutual kNN with permutation p-values.  Embeddings come from (and go to) the cache.

    ``config`` says what to compute; keyword ``settings`` (``k=5``) replace single fields of it.
    ``subgroups`` (a SubgroupConfig): the probes' figures by subgroup, attribute separability, shortcut check."""
    config = replace(config or FeaturesConfig(), **settings)
    layers, pool, train_split, test_split, limit = config.layers, config.pool, config.train_split, config.test_split, config.limit
    k, mutual_k, shots, n_draws, n_boot = config.k, config.mutual_k, config.shots, config.n_draws, config.n_boot
    n_permutations, cka_estimator, projections = config.n_permutations, config.cka_estimator, config.projections
    max_projection, batch_size, seed = config.max_projection, config.batch_size, config.seed
    if not encoders:
        raise MedrepError("no model given", where=Param("model"))
    if cka_estimator not in ("biased", "unbiased"):
        raise MedrepError(f"unknown CKA estimator {cka_estimator!r} (choose biased or unbiased)", where=Param("cka"))
    if k < 1 or mutual_k < 1:
        raise MedrepError("must be at least 1", where=Param("k"))
    layers = list(layers) if layers else [None]
    if len(set(layers)) != len(layers):
        raise MedrepError("a layer is listed twice", where=Param("layer"))
    check_unique_encoders(encoders)
    train, test = train_test_splits(dataset, train_split, test_split, limit, seed)
    if not getattr(dataset, "splits", None):
        train_split, test_split = "drawn 70% (by patient or source file)", "drawn 30% (by patient or source file)"
    classes = list(dataset.classes)
    if dataset.findings:
        from medrep.features.multilabel import run_multilabel_features

        if subgroups is not None:
            _refuse_multilabel_subgroups(dataset)

        return run_multilabel_features(encoders, train, test, layers, pool=pool, n_boot=n_boot, batch_size=batch_size,
                                       cache=cache, seed=seed, settings={"train_split": train_split,
                                                                         "test_split": test_split, "limit": limit})
    check_split_labels(np.asarray(train.labels), np.asarray(test.labels), classes, getattr(dataset, "name", Param("data")))
    adapted: dict[str, Any] = {}  # defaults scaled down to small data, reported rather than failing
    k, adapted["k"] = adapt_k(k, train.labels)
    shots, adapted["shots"] = adapt_shots(shots, train.labels)
    adapted = {name: a for name, a in adapted.items() if a is not None}
    analysis = _subgroup_analysis(subgroups, test)
    probe_groups, probe_patients = None, None
    if analysis is not None:  # the attribute probe reads train and test items together
        from medrep.subgroups.run import attribute_groups

        probe_groups = {k: np.concatenate([attribute_groups(train, [k], subgroups.age_bins)[k], v])
                        for k, v in analysis.groups.items()}
        probe_patients = None if train.patients is None or test.patients is None else \
            np.concatenate([train.patients, test.patients])
    reps = load_representations(encoders, train, test, layers, pool=pool, batch_size=batch_size, cache=cache)
    result = FeaturesResult(classes=classes, settings={
        "train_split": train_split, "test_split": test_split, "limit": limit, "k": k, "mutual_k": mutual_k,
        "shots": list(shots), "few_shot_draws": n_draws, "n_boot": n_boot, "n_permutations": n_permutations,
        "cka_estimator": cka_estimator, "projections": list(projections), "seed": seed, "layers": layers,
        "adapted": adapted, "geometry": "L2-normalised test embeddings", "n_images": len(test),
        "n_patients": None if test.patients is None else len(set(test.patients.tolist())),
        "intervals": "95%: " + ("bootstrap over whole patients (kNN and probe accuracies, AUC), over items (mutual kNN)"
                                if is_clustered(test.patients, len(test)) else "bootstrap over items (accuracies, AUC, mutual kNN)")
                     + ", over draws (few-shot), delete-half jackknife (silhouette, Davies-Bouldin, Calinski-Harabasz, "
                       "Fisher, CKA)"})
    n_pairs = len(reps) * (len(reps) - 1) // 2
    with progress_bar("features analysis", len(reps) + n_pairs) as bar:
        for rep in reps:
            per_item: dict[str, Any] = {}
            metrics, cos = model_metrics(rep.train.vectors, rep.train.labels, rep.test.vectors, rep.test.labels, k=k,
                                         shots=shots, n_draws=n_draws, n_boot=n_boot, seed=seed, per_item=per_item,
                                         patients=(_patients_of(train, rep.train.ids), _patients_of(test, rep.test.ids)))
            if analysis is not None:
                _add_subgroups(analysis, rep, per_item, test.ids, classes, (probe_groups, probe_patients))
            result.models[rep.name] = {
                "metrics": metrics, "dim": int(rep.test.vectors.shape[1]), "n_train": len(rep.train),
                "n_test": len(rep.test), "encoder": rep.test.meta.get("encoder"), "layer": rep.test.meta.get("layer"),
                "cache_keys": {"train": rep.train.key, "test": rep.test.key}}
            result.centroid_cosine[rep.name] = cos
            result.projections[rep.name] = {}
            for method in projections:
                coords, idx = project_2d(rep.test.vectors, method, seed=seed, max_items=max_projection)
                result.projections[rep.name][method] = (coords, np.asarray(rep.test.labels)[idx])
            bar.advance(1)
        for i in range(len(reps)):
            for j in range(i + 1, len(reps)):
                a, b = reps[i], reps[j]
                if a.test.ids != b.test.ids:  # --skip-bad may drop different items per model
                    raise MedrepError(f"{a.name} and {b.name} embedded different items; rerun without --skip-bad "
                                      "or fix the unreadable items", where="similarity")
                result.pairs.append(compare_spaces(a.test.vectors, b.test.vectors, a.name, b.name, k=mutual_k,
                                                   unbiased=cka_estimator == "unbiased", n_permutations=n_permutations,
                                                   n_boot=min(n_boot, 100), seed=seed))
                bar.advance(1)
    if analysis is not None:
        result.subgroups = analysis.result
    return result


def run_probe_subgroups(encoders: Sequence[Any], dataset, config, train_split: str = "train", test_split: str = "test",
                        limit: int | None = None, k: int = 20, batch_size: int = 64, cache=None,
                        seed: int = 0) -> tuple[Any, dict[str, Metric]]:
    """The subgroup analysis alone (no geometry, projections or model pairs): kNN and linear-probe figures by
    subgroup, attribute separability and the shortcut check per model.  Returns (SubgroupResult, {figure:
    overall Metric})."""
    check_unique_encoders(encoders)
    if getattr(dataset, "findings", None):
        _refuse_multilabel_subgroups(dataset)
    train, test = train_test_splits(dataset, train_split, test_split, limit, seed)
    classes = list(dataset.classes)
    check_split_labels(np.asarray(train.labels), np.asarray(test.labels), classes, getattr(dataset, "name", "data"))
    analysis = _subgroup_analysis(config, test)
    from medrep.features.probes import LinearProbe
    from medrep.intervals import bootstrap_metric
    from medrep.subgroups.run import attribute_groups
    from medrep.subgroups.stats import ItemFigure, interval, macro_auc_fast

    probe_groups = {a: np.concatenate([attribute_groups(train, [a], config.age_bins)[a], v]) for a, v in analysis.groups.items()}
    probe_patients = None if train.patients is None or test.patients is None else np.concatenate([train.patients, test.patients])
    overall: dict[str, Metric] = {}
    for rep in load_representations(encoders, train, test, [None], batch_size=batch_size, cache=cache):
        knn = knn_accuracy(rep.train.vectors, rep.train.labels, rep.test.vectors, rep.test.labels, k=min(k, len(rep.train)),
                           n_boot=config.n_boot, seed=seed)
        probe = LinearProbe(seed=seed).fit(rep.train.vectors, rep.train.labels)
        proba = probe.predict_proba(rep.test.vectors)
        pred = probe.classes_[np.argmax(proba, axis=1)]
        y = np.asarray(rep.test.labels)
        auc = ItemFigure("auc", fn=lambda i, y=y, proba=proba, cls=probe.classes_: macro_auc_fast(y[i], proba[i], cls))
        overall.update({f"{rep.name}/knn_accuracy": knn.accuracy,
                        f"{rep.name}/linear_probe_accuracy": bootstrap_metric(pred == y, n_boot=config.n_boot, seed=seed),
                        f"{rep.name}/linear_probe_auc": interval(auc, np.arange(len(y)), test.patients, config.n_boot, seed)})
        per_item = {"knn_predictions": knn.predictions, "linear_predictions": pred, "linear_proba": proba,
                    "linear_classes": probe.classes_}
        _add_subgroups(analysis, rep, per_item, test.ids, classes, (probe_groups, probe_patients))
    return analysis.result, overall


def _refuse_multilabel_subgroups(dataset) -> None:
    """Subgroup figures, gaps and the shortcut check are of one label's probe, not of a set of findings."""
    from medrep.data.findings import finding_spelling

    raise MedrepError(f"subgroups need one label, and {getattr(dataset, 'name', 'the data')} is multi-label "
                      f"({len(dataset.findings)} findings): pick one, e.g. --data "
                      f"'SPEC{finding_spelling(list(dataset.findings))}'", where=Param("by"))


def _subgroup_analysis(config, test):
    if config is None:
        return None
    from medrep.subgroups.run import SubgroupAnalysis, attribute_groups

    groups = attribute_groups(test, config.by, config.age_bins)
    return SubgroupAnalysis(config, groups, np.asarray(test.labels), test.patients)


def _add_subgroups(analysis, rep: RepresentationData, per_item: dict[str, Any], test_ids: list[str],
                   classes: list[str], probe: tuple[dict[str, np.ndarray], np.ndarray | None]) -> None:
    """The probes' per-item figures by subgroup, and the attributes' separability / shortcut check in this space."""
    from medrep.subgroups.stats import ItemFigure, macro_auc_fast as macro_auc

    if list(rep.test.ids) != list(test_ids):
        raise MedrepError(f"{rep.name} embedded a different set of test items (--skip-bad); the subgroup breakdown needs "
                          "every item", where=Param("by"))
    y = np.asarray(rep.test.labels)
    proba, cls = per_item["linear_proba"], per_item["linear_classes"]
    linear_correct = per_item["linear_predictions"] == y
    analysis.add_figures([
        ItemFigure(f"{rep.name}/knn_accuracy", values=per_item["knn_predictions"] == y),
        ItemFigure(f"{rep.name}/linear_probe_accuracy", values=linear_correct),
        ItemFigure(f"{rep.name}/linear_probe_auc", fn=lambda i: macro_auc(y[i], proba[i], cls))])
    probe_items = None
    if all(len(v) == len(rep.train) + len(rep.test) for v in probe[0].values()):  # unless --skip-bad dropped some
        probe_items = (np.concatenate([rep.train.vectors, rep.test.vectors]), probe[0], probe[1])
    analysis.add_representation(rep.name, rep.test.vectors, class_scores=proba, correct=linear_correct,
                                class_names=[classes[int(c)] for c in cls], probe_items=probe_items)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
