"""``run_alignment`` (encoders + dataset → AlignResult) and ``write_align_outputs`` (JSON, CSV, PNG)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medrep.align.analysis import default_factory, fit_probe, stitch, zero_shot, zero_shot_predict, class_embeddings
from medrep.align.anchors import parse_anchor_counts, select_anchors
from medrep.align.estimators import ESTIMATORS, estimator_options
from medrep.align.text import class_prompts, dataset_captions, encode_texts_cached
from medrep.align.config import AlignConfig
from medrep.configs import replace
from medrep.errors import MedrepError, Param
from medrep.intervals import CLUSTER_INTERVAL, bootstrap_metric
from medrep.results import RESULTS_SCHEMA_VERSION, Metric, metric_rows

# what each metric means, for the report and the CSV
METRIC_HELP = {
    "target_accuracy": "target encoder's own linear probe on its own test embeddings (the ceiling)",
    "stitched_accuracy": "source test images → T → classifier trained on the target's space",
    "naive_accuracy": "source embeddings zero-padded/truncated into the target's classifier, no T",
    "shuffled_accuracy": "T fitted on wrongly paired anchors: mean over 5 seeded permutations of the target side",
    "shuffled_accuracy_sd": "spread of the shuffled-pairs control: SD over its permutations (low/high: worst and best one)",
    "relative_stitched_accuracy": "classifier on the target's relative representation applied to the source's",
    "retrieval_top1": "held-out pairs: T(source_i) nearest (cosine) to target_i among all test items",
    "retrieval_top5": "held-out pairs: target_i among the 5 nearest to T(source_i)",
    "mean_cosine": "mean cosine between T(source_i) and target_i",
    "zero_shot_accuracy": "caption alignment: image → T (fitted on image–caption anchors) → text space, argmax cosine "
                          "to the class prompt ensembles",
    "zero_shot_naive_accuracy": "image embedding padded/truncated into text space, no T",
    "zero_shot_shuffled_accuracy": "T fitted on shuffled image–caption pairs: mean over 5 seeded permutations",
    "zero_shot_shuffled_accuracy_sd": "spread of that control: SD over its permutations (low/high: worst and best one)",
    "zero_shot_retrieval_top1": "test image → T nearest to its own caption among all test captions",
    "zero_shot_retrieval_top5": "own caption among the 5 nearest",
    "zero_shot_mean_cosine": "mean cosine between T(image_i) and caption_i embeddings",
    "chance_accuracy": "1 / number of classes",
    "caption_prompt_accuracy": "the test captions themselves classified by the prompts (prompt quality ceiling)",
    "native_zero_shot_accuracy": "the model's own text tower with the same prompts",
}
FEWSHOT_NOTE = ("This is caption alignment, not zero-shot (in effect few-shot): T is fitted on image–caption anchors, and when captions name "
                "the class (as phantom captions do) the labels reach the text space through the anchors.")


@dataclass
class AlignResult:
    source: str
    target: str | None
    text: str | None
    estimator: str
    anchor_selection: str
    seed: int
    anchor_counts: list[int]
    by_anchors: dict[int, dict[str, Metric]] = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0
    classes: list[str] = field(default_factory=list)
    prompts: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    cache_keys: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Metric]:
        """Headline metrics: those at the largest anchor count."""
        return self.by_anchors[max(self.by_anchors)] if self.by_anchors else {}

    def table(self) -> list[dict[str, Any]]:
        return metric_rows("anchors", {n: self.by_anchors[n] for n in sorted(self.by_anchors)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "kind": "align",
            "source": self.source, "target": self.target, "text": self.text,
            "estimator": self.estimator, "anchor_selection": self.anchor_selection, "seed": self.seed,
            "anchor_counts": self.anchor_counts, "n_train": self.n_train, "n_test": self.n_test, "classes": self.classes,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "by_anchors": {str(n): {k: m.to_dict() for k, m in ms.items()} for n, ms in sorted(self.by_anchors.items())},
            "metric_help": {k: v for k, v in METRIC_HELP.items() if k in self.metrics},
            "tables": {"sweep": self.table()},
            "prompts": self.prompts, "options": self.options, "cache_keys": self.cache_keys, "notes": self.notes,
        }

    def summary(self) -> str:
        """A few readable lines for the terminal."""
        lines = [f"alignment {self.source} → {self.target or self.text} ({self.estimator}, {self.anchor_selection} anchors, "
                 f"{self.n_test} test items)"]
        for n in sorted(self.by_anchors):
            ms = self.by_anchors[n]
            parts = [f"{k}={ms[k].value:.3f}" for k in ("stitched_accuracy", "target_accuracy", "naive_accuracy",
                                                        "shuffled_accuracy", "retrieval_top1", "zero_shot_accuracy",
                                                        "zero_shot_naive_accuracy", "chance_accuracy") if k in ms]
            lines.append(f"  {n:>5} anchors: " + "  ".join(parts))
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


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
    probe = fit_probe(target.train.vectors, y_train, cfg.seed)
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


_CURVES = [  # (metric, label, style)
    ("target_accuracy", "target's own", dict(color="black", ls="--")),
    ("stitched_accuracy", "stitched (T)", dict(color="tab:blue")),
    ("relative_stitched_accuracy", "relative repr.", dict(color="tab:cyan")),
    ("shuffled_accuracy", "T on shuffled pairs", dict(color="tab:red", ls=":")),
    ("naive_accuracy", "naive (no T)", dict(color="tab:gray", ls=":")),
    ("zero_shot_accuracy", "caption alignment via T", dict(color="tab:green")),
    ("zero_shot_shuffled_accuracy", "caption alignment, shuffled pairs (mean)", dict(color="tab:orange", ls=":")),
    ("zero_shot_naive_accuracy", "caption alignment, naive", dict(color="tab:olive", ls=":")),
    ("native_zero_shot_accuracy", "native zero-shot", dict(color="tab:purple", ls="--")),
    ("caption_prompt_accuracy", "captions vs prompts", dict(color="tab:brown", ls="-.")),
    ("chance_accuracy", "chance", dict(color="lightgray", ls="-")),
]


def plot_accuracy_vs_anchors(result: AlignResult, path: str | Path) -> Path:
    from medrep.io import atomic_write
    from medrep.plotting import pyplot

    plt = pyplot()

    counts = sorted(result.by_anchors)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for key, label, style in _CURVES:
        if not all(key in result.by_anchors[n] for n in counts):
            continue
        ms = [result.by_anchors[n][key] for n in counts]
        ax.plot(counts, [m.value for m in ms], marker="o" if len(counts) < 12 else None, ms=3, label=label, **style)
        if all(m.low is not None for m in ms) and key not in ("target_accuracy", "chance_accuracy"):
            ax.fill_between(counts, [m.low for m in ms], [m.high for m in ms], color=style.get("color"), alpha=0.12, lw=0)
    if len(counts) > 1 and counts[-1] / max(counts[0], 1) >= 10:
        ax.set_xscale("log")
    ax.set_xticks(counts, [str(n) for n in counts])  # the counts actually run, not powers of ten
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("anchors")
    ax.set_ylabel(f"accuracy ({result.n_test} test items, 95% bootstrap CI)")
    ax.set_title(f"{result.source} → {result.target or result.text} ({result.estimator})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def write_align_outputs(result: AlignResult, out_dir: str | Path) -> dict[str, Path]:
    """results.json, sweep.csv, prompts.csv (zero-shot) and accuracy_vs_anchors.png; returns the figure paths."""
    from medrep.io import write_csv_atomic, write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result.to_dict())

    def _csv(name: str, header: list[str], rows: list[list[Any]]) -> None:
        write_csv_atomic(out / name, header, rows)

    _csv("sweep.csv", ["anchors", "metric", "value", "low", "high", "n", "meaning"],
         [[r["anchors"], r["metric"], r["value"], r["low"], r["high"], r["n"], METRIC_HELP.get(r["metric"], "")] for r in result.table()])
    if result.prompts:
        _csv("prompts.csv", ["class", "prompt"], [[c, p] for c, ps in result.prompts.items() for p in ps])
    return {"accuracy_vs_anchors": plot_accuracy_vs_anchors(result, out / "accuracy_vs_anchors.png")}
