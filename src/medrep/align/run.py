"""``run_alignment``: encoders + dataset + :class:`~medrep.align.config.AlignConfig` → :class:`AlignResult`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from medrep.align.analysis import class_embeddings, default_factory, fit_probe, stitch, zero_shot, zero_shot_predict
from medrep.align.anchors import parse_anchor_counts, select_anchors
from medrep.align.config import AlignConfig
from medrep.align.estimators import estimator_options
from medrep.align.registry import ESTIMATORS
from medrep.align.result import FEWSHOT_NOTE, AlignResult
from medrep.align.text import class_prompts, dataset_captions, encode_texts_cached
from medrep.configs import replace
from medrep.errors import MedrepError, Param
from medrep.intervals import CLUSTER_INTERVAL, bootstrap_metric
from medrep.results import Metric


def fit_anchor_counts(counts: Sequence[int], n_train: int) -> tuple[list[int], dict[str, Any] | None]:
    """The anchor counts the training items can supply: larger ones are left out, and when none is left, all
    training items are the anchors; with the record of the change (None when nothing changed)."""
    kept = [n for n in counts if n <= n_train]
    if len(kept) == len(counts):
        return list(counts), None
    used = kept or [n_train]
    return used, {"asked": list(counts), "used": used, "why": f"there are {n_train} training items"}


def _splits(dataset, train_split: str, test_split: str, seed: int):
    names = getattr(dataset, "splits", []) or []
    if train_split in names and test_split in names:
        return dataset.split(train_split), dataset.split(test_split), None
    if names and (train_split in names) != (test_split in names):
        missing = test_split if train_split in names else train_split
        raise MedrepError(f"no split {missing!r} (available: {', '.join(names)})", where=Param("data"))
    # A single-split source: a seeded, stratified 70/30 split so anchors never come from the evaluation
    # items, drawn over patients (or source files: the frames of one DICOM are near-duplicates), never items.
    from medrep.data.autosplit import grouped_split

    train, test, by = grouped_split(dataset, seed=seed, where=Param("data"))
    return dataset.subset(train), dataset.subset(test), \
        f"the data has no train/test splits: used a seeded stratified 70/30 split by {by}"


def run_alignment(source_encoder, dataset, config: AlignConfig | None = None, *, target_encoder=None, text_encoder=None,
                  cache=None, text_cache: bool = True, **settings: Any) -> AlignResult:
    """Fit T on anchors from ``config.train_split`` and evaluate on ``config.test_split``, for every anchor count.

    ``target_encoder``: stitching (source → target classifier); ``text_encoder`` (spec or object): caption
    alignment through image–caption anchors.  At least one of the two is required; both may be given.
    ``config`` says what to compute; keyword ``settings`` (``anchors=[40]``) replace single fields of it.
    ``text_cache``: keep encoded texts in the text-embedding cache.
    """
    from medrep.data import load_dataset
    from medrep.models import load_encoder, load_text_encoder

    cfg = replace(config or AlignConfig(), **settings)
    if target_encoder is None and text_encoder is None:
        raise MedrepError("give a target image encoder (stitching) or a text encoder (caption alignment)", where=Param("target_model/text"))
    ESTIMATORS.check(cfg.estimator)
    unknown = sorted(set(cfg.estimator_options) - {o.name for o in ESTIMATORS.entry(cfg.estimator).options})
    if unknown:
        raise MedrepError(f"the {cfg.estimator} estimator has no option {', '.join(unknown)}", where=Param("estimator"))
    own = estimator_options(cfg.estimator, {"solver": "closed", "seed": cfg.seed, **cfg.estimator_options})
    counts = parse_anchor_counts(cfg.anchors)
    factory = default_factory(cfg.estimator, ridge=cfg.ridge, scale=cfg.scale, **own)
    check = factory()  # validates ridge / solver before any embedding work; checks the anchor counts below
    source = load_encoder(source_encoder)
    target = load_encoder(target_encoder) if target_encoder is not None else None
    text = load_text_encoder(text_encoder) if text_encoder is not None else None
    data = load_dataset(dataset)
    train, test, split_note = _splits(data, cfg.train_split, cfg.test_split, cfg.seed)
    if cfg.limit:
        test = test.limit(cfg.limit, seed=cfg.seed)
    notes = [split_note] if split_note else []
    counts, scaled = fit_anchor_counts(counts, len(train))
    if scaled:
        notes.append(f"anchor counts scaled down to the data: {', '.join(map(str, scaled['asked']))} → "
                     f"{', '.join(map(str, scaled['used']))} ({scaled['why']} in the {cfg.train_split} split)")
    source_emb = _Embedded(_embed(source, train, "train", cfg, cache), _embed(source, test, "test", cfg, cache))
    for n in counts:  # fail before the expensive parts when a count cannot work
        check.check_anchor_count(n, source_emb.train.vectors.shape[1])
        if n > len(train):
            raise MedrepError(f"{n} anchors requested but the {cfg.train_split} split has {len(train)} items", where=Param("anchors"))
    anchor_sets = {n: select_anchors(n, source_emb.train.labels, cfg.anchor_selection, cfg.seed, source_emb.train.vectors)
                   for n in counts}
    result = AlignResult(source=source.name, target=target.name if target else None, text=getattr(text, "name", None),
                         estimator=cfg.estimator, anchor_selection=cfg.anchor_selection, seed=cfg.seed, anchor_counts=counts,
                         n_train=len(train), n_test=len(test), classes=list(data.classes),
                         options={"ridge": cfg.ridge, "affine_solver": own.get("solver"),
                                  **({"estimator_options": other} if (other := {k: v for k, v in own.items() if k not in ("solver", "seed")}) else {}),
                                  "scale": cfg.scale, "relative": cfg.relative, "center_text": cfg.center_text,
                                  "train_split": cfg.train_split, "eval_split": cfg.test_split, "limit_eval": cfg.limit,
                                  "layer": cfg.layer, "pool": cfg.pool, "n_boot": cfg.n_boot},
                         cache_keys={f"source/{cfg.train_split}": source_emb.train.key,
                                     f"source/{cfg.test_split}": source_emb.test.key}, notes=notes)
    groups = test.patients if test.patients is not None and len(test) == len(source_emb.test.labels) else None
    if groups is not None:  # images of one patient are resampled together
        result.options.update(n_images=len(test), n_patients=len(set(groups.tolist())), interval=CLUSTER_INTERVAL)
    boot = lambda v: bootstrap_metric(v, n_boot=cfg.n_boot, seed=cfg.seed, groups=groups)  # noqa: E731
    for n in counts:
        result.by_anchors[n] = {}
    if target is not None:
        target_emb = _Embedded(_embed(target, train, "train", cfg, cache), _embed(target, test, "test", cfg, cache))
        _stitching_part(result, source_emb, target_emb, anchor_sets, factory, cfg, boot)
    if text is not None:
        _zero_shot_part(result, source, text, train, test, source_emb, anchor_sets, factory, cfg, text_cache, boot)
    return result


@dataclass(frozen=True)
class _Embedded:
    """One encoder's embeddings of the train and the test items."""

    train: Any
    test: Any


def _embed(encoder, dataset, what: str, cfg: AlignConfig, cache):
    from medrep.embeddings.extract import extract_embeddings

    return extract_embeddings(encoder, dataset, layer=cfg.layer, pool=cfg.pool, batch_size=cfg.batch_size, cache=cache,
                              description=f"embedding {what} with {encoder.name}").check_finite()


def _stitching_part(result: AlignResult, source: _Embedded, target: _Embedded, anchor_sets, factory, cfg: AlignConfig,
                    boot) -> None:
    from medrep.progress import progress_bar

    y_train, y_test = source.train.labels, source.test.labels
    result.cache_keys.update({f"target/{cfg.train_split}": target.train.key, f"target/{cfg.test_split}": target.test.key})
    probe = _target_probe(target.train, y_train, cfg.seed)
    own = boot(probe.predict(target.test.vectors) == y_test)
    with progress_bar("stitching over anchor counts", len(anchor_sets)) as bar:
        for n, a in anchor_sets.items():
            v = stitch(factory, probe, source.train.vectors[a], target.train.vectors[a], source.test.vectors,
                       target.test.vectors, y_test, cfg.seed, cfg.relative, target.train.vectors, y_train)
            m = result.by_anchors[n]
            m.update(target_accuracy=own, stitched_accuracy=boot(v.stitched), naive_accuracy=boot(v.naive),
                     shuffled_accuracy=boot(v.shuffled), shuffled_accuracy_sd=_spread(v.shuffled_runs),
                     retrieval_top1=boot(v.top1), retrieval_top5=boot(v.top5),
                     mean_cosine=boot(v.cosine))
            if v.relative is not None:
                m["relative_stitched_accuracy"] = boot(v.relative)
            bar.advance(1)


# The target's classifier depends only on the target's training embeddings: an audit stitching several sources into
# one target fits it once.  Keyed by the embedding cache's key (which names model, data and layer); uncached
# embeddings (no key) are always fitted afresh.
_TARGET_PROBES: dict[tuple[str, str, int], Any] = {}


def _target_probe(train, labels: np.ndarray, seed: int):
    import hashlib

    if not getattr(train, "key", None):
        return fit_probe(train.vectors, labels, seed)
    key = (train.key, hashlib.sha1(np.ascontiguousarray(labels).tobytes()).hexdigest(), seed)
    if key not in _TARGET_PROBES:
        while len(_TARGET_PROBES) >= 4:
            _TARGET_PROBES.pop(next(iter(_TARGET_PROBES)))
        _TARGET_PROBES[key] = fit_probe(train.vectors, labels, seed)
    return _TARGET_PROBES[key]


def _spread(runs: np.ndarray) -> Metric:
    """The standard deviation of the shuffled-pairs accuracy over its permutations (n: permutations; low/high:
    the lowest and highest permutation)."""
    return Metric(float(np.std(runs, ddof=1)) if len(runs) > 1 else 0.0, float(np.min(runs)), float(np.max(runs)), len(runs))


def _zero_shot_part(result: AlignResult, source, text, train, test, image: _Embedded, anchor_sets, factory,
                    cfg: AlignConfig, text_cache: bool, boot) -> None:
    classes = result.classes
    img_train, img_test, y_test = image.train.vectors, image.test.vectors, image.test.labels
    train_caps = dataset_captions(train)
    needed = np.unique(np.concatenate(list(anchor_sets.values())))
    # only the anchors' captions are encoded (once, for the whole sweep); cached by encoder + strings
    enc = encode_texts_cached(text, [train_caps[i] for i in needed], cache=text_cache)
    cap_vecs = np.zeros((len(train_caps), enc.shape[1]), np.float32)
    cap_vecs[needed] = enc
    try:
        test_caps = dataset_captions(test)
        txt_test = encode_texts_cached(text, test_caps, cache=text_cache)
    except MedrepError:
        test_caps, txt_test = None, None
        result.notes.append("the evaluation split has no captions: no image→caption retrieval or prompt ceiling")
    per_class = class_prompts(classes, train_caps, cfg.prompt_file, cfg.prompt)
    result.prompts = per_class
    prompt_vecs = [encode_texts_cached(text, per_class[c], cache=text_cache) for c in classes]
    chance = Metric(1.0 / len(classes), None, None, len(y_test))
    ceiling = None
    if txt_test is not None:
        c0 = cap_vecs[anchor_sets[max(anchor_sets)]].mean(0) if cfg.center_text else None
        ceiling = boot(zero_shot_predict(txt_test, class_embeddings(prompt_vecs, c0), c0) == y_test)
    native = _native_zero_shot(source, img_test, y_test, per_class, classes, boot, result, text_cache)
    from medrep.progress import progress_bar

    with progress_bar("caption alignment over anchor counts", len(anchor_sets)) as bar:
        for n, a in anchor_sets.items():
            v = zero_shot(factory, img_train[a], cap_vecs[a], img_test, y_test, prompt_vecs, cfg.center_text, cfg.seed, txt_test)
            m = result.by_anchors[n]
            m.update(zero_shot_accuracy=boot(v.accuracy), zero_shot_naive_accuracy=boot(v.naive),
                     zero_shot_shuffled_accuracy=boot(v.shuffled), zero_shot_shuffled_accuracy_sd=_spread(v.shuffled_runs),
                     chance_accuracy=chance)
            if v.top1 is not None:
                m.update(zero_shot_retrieval_top1=boot(v.top1), zero_shot_retrieval_top5=boot(v.top5),
                         zero_shot_mean_cosine=boot(v.cosine))
            if ceiling is not None:
                m["caption_prompt_accuracy"] = ceiling
            if native is not None:
                m["native_zero_shot_accuracy"] = native
            bar.advance(1)
    result.notes.append(FEWSHOT_NOTE)


def _native_zero_shot(source, img_test, y_test, per_class, classes, boot, result, text_cache: bool = True) -> Metric | None:
    tower = getattr(source, "text_encoder", None)
    if tower is None:
        return None
    vecs = [encode_texts_cached(tower, per_class[c], cache=text_cache) for c in classes]  # honours --no-cache too
    if vecs[0].shape[1] != img_test.shape[1]:
        result.notes.append(f"native zero-shot skipped: text tower width {vecs[0].shape[1]} ≠ image embedding width {img_test.shape[1]}")
        return None
    return boot(zero_shot_predict(img_test, class_embeddings(vecs, None), None) == y_test)
