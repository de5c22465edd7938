"""Text-overlay test: write words onto the images and measure how far each model's representation
moves, whether the clean-trained probe and kNN change their minds, and — for models with a text
tower or an aligned text encoder — whether zero-shot scores shift toward the written class name.

On phantoms made with the confounder option the same numbers show whether a model (or a probe fitted
on its embeddings) learned the shortcut: writing the tag flips predictions toward its class.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from medrep.configs import replace
from medrep.embeddings.extract import extract_embeddings
from medrep.errors import MedrepError, Param
from medrep.features.neighbours import l2_normalise
from medrep.features.probes import KNNClassifier, LinearProbe, adapt_k
from medrep.overlay.config import OverlayConfig
from medrep.overlay.render import OverlayDataset, TextOverlay
from medrep.overlay.result import OverlayResult
from medrep.overlay.zero_shot import ZeroShotFn, resolve_zero_shot, softmax
from medrep.progress import progress_bar
from medrep.intervals import bootstrap_metric
from medrep.results import Metric


def _toward(pred_clean: np.ndarray, pred_over: np.ndarray, target: int, n_boot: int, seed: int) -> Metric:
    """Among items not already predicted as ``target``, the share the overlay moved to ``target``."""
    eligible = pred_clean != target
    return bootstrap_metric((pred_over[eligible] == target).astype(float), n_boot=n_boot, seed=seed)


def word_targets(words: Sequence[str], classes: Sequence[str], word_class: Mapping[str, str] | None) -> dict[str, int | None]:
    """The class index each word stands for: the class of the same name (case-insensitive), or the one
    ``word_class`` maps it to; None for a word that names no class."""
    if len(set(words)) != len(words):
        raise MedrepError("a word is listed twice", where=Param("words"))
    lower = {c.lower(): i for i, c in enumerate(classes)}
    target_of: dict[str, int | None] = {}
    for w in words:
        t = (word_class or {}).get(w, w)
        if word_class and w in word_class and t.lower() not in lower:
            raise MedrepError(f"target class {t!r} for {w!r} is not a class (classes: {', '.join(classes)})",
                              where=Param("word_class"))
        target_of[w] = lower.get(t.lower())
    return target_of


def run_overlay(encoders: Sequence[Any], dataset, config: OverlayConfig | None = None, *, text_encoder=None,
                zero_shot: ZeroShotFn | Mapping[str, ZeroShotFn] | None = None, cache=None,
                **settings: Any) -> OverlayResult:
    """Overlay each of ``config.words`` (default: the class names) on the test images and compare with the clean ones.

    Probes and kNN are fitted on clean train embeddings.  A word's target class is the class of the
    same name (case-insensitive) or the one ``config.word_class`` maps it to (e.g. {"R": "malignant"} for the
    confounder tag).  ``zero_shot`` is a scorer ``embeddings (N, D) → scores (N, K)`` over the classes
    (treated as logits), or a dict of them by model name; models with a text tower use their own.
    ``text_encoder`` scores the others only with ``config.text_aligned`` (see :func:`resolve_zero_shot`).
    ``config`` says what to compute; keyword ``settings`` (``k=5``) replace single fields of it.
    """
    from medrep.features.run import check_split_labels, check_unique_encoders, train_test_splits

    cfg = replace(config or OverlayConfig(), **settings)
    if not encoders:
        raise MedrepError("no model given", where=Param("model"))
    check_unique_encoders(encoders)
    classes = list(dataset.classes)
    words = list(cfg.words) if cfg.words else list(classes)
    target_of = word_targets(words, classes, cfg.word_class)
    overlays = [TextOverlay(w, font=cfg.font, size=cfg.font_size, position=cfg.position, colour=cfg.colour,
                            opacity=cfg.opacity, fit=cfg.fit, margin=cfg.margin) for w in words]
    train, test = train_test_splits(dataset, cfg.train_split, cfg.test_split, cfg.limit, cfg.seed)
    y_train, y_test = np.asarray(train.labels), np.asarray(test.labels)
    check_split_labels(y_train, y_test, classes, getattr(dataset, "name", Param("data")))
    k, k_adapted = adapt_k(cfg.k, y_train)  # scaled down to small data, reported rather than failing
    result = OverlayResult(classes=classes, overlays=overlays, settings={
        "train_split": cfg.train_split, "test_split": cfg.test_split, "limit": cfg.limit, "k": k, "n_boot": cfg.n_boot,
        "seed": cfg.seed, "adapted": {"k": k_adapted} if k_adapted else {},
        "prompt_template": cfg.prompt, "text_aligned": cfg.text_aligned,
        "targets": {w: (classes[t] if t is not None else None) for w, t in target_of.items()},
        "cosine_shift": "1 − cos(clean, overlaid) per image, averaged"})
    for enc in encoders:
        zs, zs_note = resolve_zero_shot(enc, classes, zero_shot, text_encoder, cfg.prompt, cfg.text_aligned)
        result.models[enc.name] = _one_model(enc, train, test, overlays, target_of, classes, k, zs, zs_note, cfg, cache)
    return result


def _one_model(enc, train, test, overlays: list[TextOverlay], target_of: dict[str, int | None], classes: list[str],
               k: int, zs: ZeroShotFn | None, zs_note: str, cfg: OverlayConfig, cache) -> dict[str, Any]:
    """One model's clean accuracies and, per word, how the overlay moved its embeddings and answers."""
    n_boot, seed, batch_size = cfg.n_boot, cfg.seed, cfg.batch_size
    tr = extract_embeddings(enc, train, batch_size=batch_size, cache=cache, description=f"{enc.name}: train").check_finite()
    te = extract_embeddings(enc, test, batch_size=batch_size, cache=cache, description=f"{enc.name}: test").check_finite()
    probe = LinearProbe(seed=seed).fit(tr.vectors, tr.labels)
    knn = KNNClassifier(k).fit(tr.vectors, tr.labels)
    p_clean, k_clean = probe.predict(te.vectors), knn.predict(te.vectors)
    z_clean = softmax(np.asarray(zs(te.vectors), dtype=np.float64)) if zs else None
    if z_clean is not None and z_clean.shape != (len(te), len(classes)):
        raise MedrepError(f"zero-shot scorer returned shape {z_clean.shape}, expected ({len(te)}, {len(classes)})",
                          where="zero-shot")
    clean = {"linear_probe_accuracy": bootstrap_metric(p_clean == te.labels, n_boot=n_boot, seed=seed),
             "knn_accuracy": bootstrap_metric(k_clean == te.labels, n_boot=n_boot, seed=seed)}
    if z_clean is not None:
        clean["zero_shot_accuracy"] = bootstrap_metric(z_clean.argmax(1) == te.labels, n_boot=n_boot, seed=seed)
    entry: dict[str, Any] = {"zero_shot": zs_note, "clean": clean, "words": {}}
    clean_unit = l2_normalise(te.vectors)  # the same for every word
    with progress_bar(f"{enc.name}: overlays", len(overlays)) as bar:
        for ov in overlays:
            od = extract_embeddings(enc, OverlayDataset(test, ov), batch_size=batch_size, cache=cache,
                                    description=f"{enc.name}: '{ov.text}'").check_finite()
            if od.ids != te.ids:
                raise MedrepError("overlaid and clean embeddings cover different items", where=ov.text)
            cos = (clean_unit * l2_normalise(od.vectors)).sum(1)
            p_over, k_over = probe.predict(od.vectors), knn.predict(od.vectors)
            flipped_p, flipped_k = p_over != p_clean, k_over != k_clean
            target = target_of[ov.text]
            m: dict[str, Metric] = {
                "cosine_shift": bootstrap_metric(1.0 - cos, n_boot=n_boot, seed=seed),
                "probe_flip_rate": bootstrap_metric(flipped_p, n_boot=n_boot, seed=seed),
                "knn_flip_rate": bootstrap_metric(flipped_k, n_boot=n_boot, seed=seed),
                "linear_probe_accuracy": bootstrap_metric(p_over == te.labels, n_boot=n_boot, seed=seed),
            }
            if target is not None:
                m["probe_to_target_rate"] = _toward(p_clean, p_over, target, n_boot, seed)
                m["knn_to_target_rate"] = _toward(k_clean, k_over, target, n_boot, seed)
            if z_clean is not None:
                z_over = softmax(np.asarray(zs(od.vectors), dtype=np.float64))
                m["zero_shot_flip_rate"] = bootstrap_metric(z_over.argmax(1) != z_clean.argmax(1), n_boot=n_boot, seed=seed)
                if target is not None:
                    # how much probability the written word pulls onto its own class
                    m["zero_shot_shift"] = bootstrap_metric(z_over[:, target] - z_clean[:, target], n_boot=n_boot, seed=seed)
                    m["zero_shot_to_target_rate"] = _toward(z_clean.argmax(1), z_over.argmax(1), target, n_boot, seed)
            entry["words"][ov.text] = {
                "metrics": m, "target_class": classes[target] if target is not None else None,
                "probe_flips_to": {c: int((p_over[flipped_p] == i).sum()) for i, c in enumerate(classes)},
                "knn_flips_to": {c: int((k_over[flipped_k] == i).sum()) for i, c in enumerate(classes)},
                "cache_key": od.key}
            bar.advance(1)
    return entry
