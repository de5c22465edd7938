"""The audit configuration: plain data (YAML via safe_load — no tags, no eval, no imports), validated on
load.  Unknown keys and wrong types are refused with the key's path, before any work starts."""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from medrep.errors import MedrepError, Param


@dataclass(frozen=True)
class Field:
    types: tuple[type, ...]
    default: Any = None  # a callable is called (registry-backed defaults are read when a config is checked)
    list_of: tuple[type, ...] | None = None  # element types when the field is a list
    choices: tuple[Any, ...] | Callable[[], Sequence[Any]] | None = None  # a callable reads a registry
    help: str = ""
    minimum: float | None = None  # smallest allowed number (for a list: of each element)

    def allowed(self) -> tuple[Any, ...] | None:
        return tuple(self.choices()) if callable(self.choices) else self.choices

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else copy.deepcopy(self.default)


def _registry_names(module: str, registry: str, **meta: Any) -> Callable[[], tuple[str, ...]]:
    """The names of a registry, read when a config is checked (so entries registered by plug-ins count)."""
    def names() -> tuple[str, ...]:
        import importlib

        return getattr(importlib.import_module(module), registry).names(**meta)
    return names


def _default_explain_methods() -> list[str]:
    from medrep.explain.registry import default_methods

    return list(default_methods(baselines=False))  # the baselines are added by the analysis itself


def _f(types, default=None, list_of=None, choices=None, help="", minimum=None):
    types = types if isinstance(types, tuple) else (types,)
    list_of = (list_of if isinstance(list_of, tuple) else (list_of,)) if list_of is not None else None
    return Field(types, default, list_of, choices, help, minimum)


NUM = (int, float)
SCHEMA: dict[str, Any] = {
    "title": _f(str, "medrep audit"),
    "data": _f(str, "demo", help="data spec (demo, a folder, a CSV manifest, DICOM, medmnist:FILE.npz)"),
    "train_split": _f(str, "train"),
    "test_split": _f(str, "test"),
    "models": _f(list, ["demo-vit", "demo-cnn"], list_of=str),
    "text": _f((str, type(None)), "minilm", help="text encoder for zero-shot and overlay (null: none)"),
    "head_classes": _f((list, type(None)), None, list_of=str,
                       help="class names of the models' head outputs, in output order (for heads of that size; null: the "
                            "checkpoints' own labels); a head is used only when its classes are the data's"),
    "seed": _f(int, 0),
    "batch_size": _f(int, 64, minimum=1),
    "compile": _f(bool, False, help="extract embeddings through torch.compile (as `medrep extract --compile`)"),
    "n_boot": _f((int, type(None)), None, help="bootstrap resamples behind every 95% interval (null: each analysis's default)"),
    "by": _f(list, [], list_of=str, help="item attributes to break every headline figure down by (sex, age, site, view …)"),
    "min_group_size": _f(int, 30, minimum=1, help="subgroups with fewer items are flagged too small to judge"),
    "age_bins": _f((list, type(None)), None, list_of=NUM, help="edges of the age bands (null: decades)"),
    "analyses": {
        "robustness": {
            "enabled": _f(bool, True),
            "models": _f((list, type(None)), None, list_of=str, help="subset of models (default: all)"),
            "objectives": _f(list, ["collide", "push"], list_of=str, choices=_registry_names("medrep.robustness.registry", "OBJECTIVES")),
            "attack": _f((str, list), "pgd", help="pgd, apgd, square, ensemble (= apgd + square) or a list: several give "
                                                  "the worst case per item and a gradient-masking check"),
            "queries": _f(int, 5000, minimum=1, help="query budget of the Square attack per image (default: 5000)"),
            "early_stop": _f(bool, False, help="an item leaves the attack once it meets the objective's success criterion"),
            "controls": _f(list, [], list_of=str, help="extra models attacked only in this section, as references "
                                                       "(e.g. demo-cnn-robust, an adversarially trained positive control)"),
            "eps": _f(list, [1 / 255, 2 / 255, 4 / 255, 8 / 255], list_of=NUM),
            "norm": _f(str, "linf", choices=_registry_names("medrep.robustness.registry", "NORMS")),
            "attack_steps": _f(int, 20, minimum=1, help="attack iterations per image"),
            "step_size": _f((float, int, type(None)), None),
            "random_start": _f((bool, type(None)), None),
            "attack_target": _f(str, "image", choices=("image", "centroid")),
            "limit": _f((int, type(None)), 96, help="number of source images (pairs)", minimum=1),
            "batch_size": _f(int, 32, minimum=1, help="images attacked together"),
            "noise_sigma": _f(list, [0.005, 0.01, 0.03], list_of=NUM, help="σ values of the noise-consistency detector"),
            "noise_draws": _f(int, 8, minimum=1, help="noisy copies per image for the detector"),
            "classifiers": _f((str, list), "auto", list_of=str,
                              help="head, probe, knn or a list (auto: the head when it fits the data, else probe and kNN)"),
            "layer": _f((str, type(None)), None, help="module whose representation is attacked (null: the model's representation)"),
            "pool": _f((str, type(None)), None, choices=("cls", "mean", None), help="pooling of that module (null: the model's own)"),
            "dtype": _f(str, "float32", choices=("float32", "bfloat16", "float16"), help="compute dtype of the attack"),
            "gallery_size": _f(int, 4, minimum=1, help="images in the gallery figure"),
        },
        "explain": {
            "enabled": _f(bool, True),
            "models": _f((list, type(None)), None, list_of=str),
            "methods": _f(list, _default_explain_methods, list_of=str, choices=_registry_names("medrep.explain.registry", "METHODS")),
            "metrics": _f(list, ["pointing", "iou", "mass", "auprc", "deletion", "insertion"], list_of=str),
            "explain_target": _f(str, "auto", choices=("auto", "class", "predicted", "embedding"),
                                 help="auto: class when the model has a head, else embedding"),
            "limit": _f((int, type(None)), 48, minimum=1),
            "deletion_steps": _f(int, 16, minimum=1),
            "sanity": _f(list, [], list_of=str, choices=("cascading", "independent", "logit"),
                         help="sanity checks: model-parameter randomisation (cascading, independent), random-logit test"),
            "sanity_images": _f(int, 8, minimum=1, help="images the sanity checks run on"),
            "sanity_threshold": _f(NUM, 0.5, help="a method passes randomisation below this Spearman |map|"),
            "sanity_topk": _f(NUM, 10, help="top-k% of the pixels whose overlap the sanity checks compare"),
            "batch_size": _f(int, 16, minimum=1, help="images explained together"),
            "upsample": _f(str, "bilinear", help="how a coarse map is brought to the image size"),
            "topk": _f(list, [5, 10, 20, 40], list_of=NUM, help="top-k% pixel shares of the IoU scores"),
            "deletion_baseline": _f(str, "blur", help="what removed pixels become (deletion / insertion)"),
            "road_percents": _f(list, [10, 20, 30, 50, 70, 90], list_of=NUM, help="ROAD removal percentages"),
            "method_options": _f(dict, {}, help="options per method, {method: {option: value}} (e.g. {ig: {steps: 32}})"),
            "no_baselines": _f(bool, False, help="leave out the random and centre baseline maps"),
            "gallery_size": _f(int, 4, minimum=1, help="images in the gallery figure"),
        },
        "features": {
            "enabled": _f(bool, True),
            "k": _f(int, 20, minimum=1),
            "shots": _f(list, [1, 5, 10], list_of=int, minimum=1),
            "projections": _f(list, ["tsne", "umap"], list_of=str, choices=_registry_names("medrep.features.registry", "PROJECTIONS")),
            "n_permutations": _f(int, 200, minimum=0),
            "limit": _f((int, type(None)), None, minimum=1),
            "layers": _f((list, type(None)), None, list_of=str, help="modules to embed at (default: each model's representation)"),
            "pool": _f((str, type(None)), None, choices=("cls", "mean", None), help="pooling of that module (default: the model's own)"),
            "mutual_k": _f(int, 10, minimum=1, help="neighbours for mutual-kNN alignment"),
            "draws": _f(int, 10, minimum=1, help="repeated draws per few-shot size"),
            "cka": _f(str, "biased", choices=("biased", "unbiased"), help="linear CKA estimator"),
            "max_projection": _f(int, 2000, minimum=5, help="most test embeddings drawn in one 2-D picture"),
        },
        "overlay": {
            "enabled": _f(bool, True),
            "words": _f((list, type(None)), None, list_of=str, help="default: the class names"),
            "font_size": _f(NUM, 0.25),
            "position": _f(str, "center"),
            "opacity": _f(NUM, 1.0),
            "limit": _f((int, type(None)), 300, minimum=1),
            "word_class": _f((dict, type(None)), None, help="class a word stands for when it is not a class name"),
            "font": _f((str, type(None)), None, help="a .ttf file (null: DejaVu Sans, shipped with matplotlib)"),
            "colour": _f((float, int, list), 1.0, list_of=NUM, help="grey level or [r, g, b] in [0, 1]"),
            "margin": _f(NUM, 0.03, help="gap between a word and the border, as a share of the image size"),
            "no_fit": _f(bool, False, help="do not shrink a word that is wider than the image"),
            "prompt": _f(str, "a medical image showing {label}", help="zero-shot prompt template (models with a text tower)"),
            "k": _f((int, type(None)), None, minimum=1, help="neighbours for the kNN classifier (null: the features section's k)"),
        },
        "subgroups": {
            "enabled": _f(bool, True, help="runs when `by` names attributes"),
            "data": _f((str, type(None)), None, help="data spec of the subgroup analysis (null: the audit's data)"),
            "limit": _f((int, type(None)), None, minimum=1),
            "n_permutations": _f(int, 1000, minimum=0, help="within-class shuffles behind each gap's p-value"),
            "probe_permutations": _f(int, 50, minimum=0, help="refits of the attribute probe for its permutation null"),
        },
        "alignment": {
            "enabled": _f(bool, True),
            "anchors": _f(list, [10, 25, 50, 100, 250, 500, 1000], list_of=int, minimum=1),
            "estimator": _f(str, "ortho", choices=_registry_names("medrep.align.registry", "ESTIMATORS")),
            "anchor_selection": _f(str, "random", choices=("random", "balanced", "kmeans")),
            "stitching": _f(bool, True),
            "caption_alignment": _f(bool, True, help="map each model into the text encoder's space on image–caption anchors"),
            "estimator_options": _f(dict, {}, help="the estimator's own options by name (e.g. {solver: gd} for affine)"),
            "ridge": _f(NUM, 0.0, minimum=0, help="ridge penalty for linear / lortho / affine"),
            "no_scale": _f(bool, False, help="skip standard scaling with each space's anchor statistics"),
            "relative": _f(bool, False, help="also stitch through relative representations"),
            "prompt_file": _f((str, type(None)), None, help="JSON file {class: prompt or [prompts]}"),
            "prompt": _f((list, type(None)), None, list_of=str, help="prompt templates with {label} (null: the defaults)"),
            "no_center_text": _f(bool, False, help="do not centre text vectors on the anchor captions' mean"),
            "limit": _f((int, type(None)), None, minimum=1, help="measure on at most N test items"),
            "layer": _f((str, type(None)), None, help="module to embed at (null: each model's representation)"),
            "pool": _f((str, type(None)), None, choices=("cls", "mean", None), help="pooling (null: each model's own)"),
        },
    },
}


def audit_place(section: str | None, where: Any) -> Any:
    """Where an error of the analysis ``section`` is in the audit config: a parameter (:class:`Param`) as its
    YAML path (``analyses.robustness.eps``); a parameter the config has no key for is named beside its
    section (``analyses.robustness (layer)``); anything else (a file, a spec) as it is."""
    if not isinstance(where, Param):
        return where
    keys = SCHEMA["analyses"].get(section, {}) if section else {}
    places = []
    for name in str(where).split("/"):
        if name in keys:
            places.append(f"analyses.{section}.{name}")
        elif f"{name}s" in keys:  # a list key is the plural of its flag (layers ↔ --layer)
            places.append(f"analyses.{section}.{name}s")
        elif name in SCHEMA and not isinstance(SCHEMA[name], dict):
            places.append(name)
        else:
            places.append(f"analyses.{section} ({name})" if section else name)
    return " / ".join(places)


# Keys renamed so that a YAML key is its command-line flag without dashes; the old key works for one release.
RENAMED_KEYS: dict[str, dict[str, str]] = {
    "analyses.robustness": {"steps": "attack_steps", "target": "attack_target"},
    "analyses.explain": {"steps": "deletion_steps", "target": "explain_target"},
    "analyses.overlay": {"size": "font_size"},
    "analyses.alignment": {"zero_shot": "caption_alignment"},
}


def _renamed(value: dict, path: str) -> dict:
    """``value`` with any old key of this section under its new name (noting the old one once)."""
    from medrep.vocabulary import deprecated

    renames = RENAMED_KEYS.get(path, {})
    if not any(k in value for k in renames):
        return value
    value = dict(value)
    for old, new in renames.items():
        if old in value:
            if new in value:
                raise MedrepError(f"give {new} only ({old} is its old name)", where=f"{path}.{old}")
            deprecated(f"the audit key {path}.{old}", f"{path}.{new}")
            value[new] = value.pop(old)
    return value


def _check(value: Any, spec: Any, path: str) -> Any:
    if isinstance(spec, dict):
        if value is None or value is _MISSING:  # an omitted section takes every default
            value = {}
        if not isinstance(value, dict):
            raise MedrepError(f"expected a mapping, got {type(value).__name__}", where=path)
        value = _renamed(value, path)
        out = {}
        renames = RENAMED_KEYS.get(path, {})
        for key in value:
            if not isinstance(key, str) or key not in spec:
                # a misspelt old name (`setps`) points to its new one (`attack_steps`)
                close = [renames.get(k, k) for k in difflib.get_close_matches(str(key), [*spec, *renames], n=1)]
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(spec)})"
                raise MedrepError(f"unknown key{hint}", where=f"{path}.{key}" if path else str(key))
        for key, sub in spec.items():
            out[key] = _check(value.get(key, _MISSING), sub, f"{path}.{key}" if path else key)
        return out
    field: Field = spec
    if value is _MISSING:
        return field.default_value()
    if isinstance(value, bool) and bool not in field.types:
        raise MedrepError(f"expected {_names(field.types)}, got a boolean", where=path)
    if not isinstance(value, field.types):
        if float in field.types and isinstance(value, int):
            value = float(value)
        else:
            raise MedrepError(f"expected {_names(field.types)}, got {type(value).__name__} ({value!r})", where=path)
    if isinstance(value, list) and field.list_of is not None:
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, field.list_of):
                raise MedrepError(f"expected {_names(field.list_of)}, got {type(v).__name__} ({v!r})", where=f"{path}[{i}]")
            allowed = field.allowed()
            if allowed is not None and v not in allowed:
                raise MedrepError(f"{v!r} is not one of {', '.join(map(str, allowed))}", where=f"{path}[{i}]")
            if field.minimum is not None and v < field.minimum:
                raise MedrepError(f"must be at least {field.minimum:g}, got {v!r}", where=f"{path}[{i}]")
    elif field.allowed() is not None and value not in field.allowed():
        raise MedrepError(f"{value!r} is not one of {', '.join(map(str, field.allowed()))}", where=path)
    elif field.minimum is not None and isinstance(value, (int, float)) and value < field.minimum:
        raise MedrepError(f"must be at least {field.minimum:g}, got {value!r}", where=path)
    return value


_MISSING = object()


def _names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             type(None): "null", dict: "a mapping"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def validate_config(raw: Any) -> dict[str, Any]:
    """Raw mapping → complete config with defaults; raises MedrepError naming the key path."""
    config = _check(raw, SCHEMA, "")
    if not config["models"]:
        raise MedrepError("name at least one model", where="models")
    if len(set(config["models"])) != len(config["models"]):
        raise MedrepError("a model is listed twice", where="models")
    from medrep.robustness.attacks import parse_attacks

    try:
        parse_attacks(config["analyses"]["robustness"]["attack"])
    except MedrepError as err:
        raise MedrepError(str(err).split(": ", 1)[-1], where="analyses.robustness.attack") from None
    for name in ("robustness", "explain"):
        subset = config["analyses"][name]["models"]
        for i, m in enumerate(subset or []):
            if m not in config["models"]:
                raise MedrepError(f"{m!r} is not one of the audit's models", where=f"analyses.{name}.models[{i}]")
    linf = str(config["analyses"]["robustness"]["norm"]).lower() == "linf"
    for i, e in enumerate(config["analyses"]["robustness"]["eps"]):
        # an L∞ ε is a per-pixel bound; an L2 ε a distance over all pixels (its upper bound, √(C·H·W) of the
        # images, is checked by the attack once the images are known)
        if not 0 < e or (linf and e > 1):
            raise MedrepError("ε must lie in (0, 1] (pixel units: 4/255 = 0.0157)" if linf else "an L2 ε must be positive",
                              where=f"analyses.robustness.eps[{i}]")
    for key in ("seed",):
        if config[key] < 0:
            raise MedrepError("must be non-negative", where=key)
    if len(set(config["by"])) != len(config["by"]):
        raise MedrepError("an attribute is listed twice", where="by")
    if config["age_bins"] is not None and (not config["age_bins"] or config["age_bins"] != sorted(set(config["age_bins"]))):
        raise MedrepError("age-bin edges must be increasing numbers", where="age_bins")
    if config["n_boot"] is not None and config["n_boot"] < 10:
        raise MedrepError("use at least 10 bootstrap resamples (or null for the defaults)", where="n_boot")
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if str(path) == "-":  # the YAML comes on standard input
        import sys

        p, text = Path("<stdin>"), sys.stdin.read()
    elif not p.exists():
        raise MedrepError("config file not found", where=str(p))
    try:
        raw = yaml.safe_load(text if str(path) == "-" else p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise MedrepError(f"not UTF-8 text (byte {err.start})", where=str(p)) from None
    except yaml.YAMLError as err:
        raise MedrepError(f"not valid YAML ({_yaml_problem(err)})", where=str(p)) from None
    try:
        return validate_config(raw)
    except MedrepError as err:
        raise MedrepError(str(err), where=str(p)) from None


def _yaml_problem(err) -> str:
    """PyYAML's multi-line message as one line: problem, line and column (1-based)."""
    problem = " ".join(str(getattr(err, "problem", None) or err).split())
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


# The demo's encoders: the two phantom-trained demo models and a general-purpose ImageNet encoder (EfficientNet-Lite0),
# fed the phantoms at their own 64 px (at 224 px its attacks alone would take longer than the whole demo on two cores).
# Its ImageNet head does not fit the phantom classes, so the probe and kNN judge it.
DEMO_MODELS = ["demo-vit", "demo-cnn", "efficientnet-lite0?img_size=64"]
# demo-cnn adversarially trained: the attacks' positive control, judged against demo-cnn at ε = 4/255
DEMO_CONTROLS = ["demo-cnn-robust"]


def default_config(seed: int = 0, fast: bool = False) -> dict[str, Any]:
    """The embedded default audit: phantoms, demo-vit, demo-cnn, efficientnet-lite0 (and the robust control
    demo-cnn-robust in the attacks), minilm."""
    config = validate_config({"title": "medrep demo audit: lesion phantoms", "seed": seed, "models": list(DEMO_MODELS)})
    # Sized so the whole demo stays within a few minutes on 2 CPU cores; the attacks' fuller settings
    # (200 pairs, 50 steps) are a `medrep attack` call away.
    # APGD's adaptive step size (2ε, halved at its checkpoints) makes the attacked accuracy fall with ε at these few
    # steps, where PGD's fixed 2.5·ε/steps did not; early exit spends the steps on the items still unbroken.
    config["analyses"]["robustness"].update(limit=48, batch_size=48, eps=[2 / 255, 4 / 255, 8 / 255], attack_steps=10,
                                            noise_sigma=[0.01], noise_draws=4, attack="apgd", early_stop=True,
                                            controls=list(DEMO_CONTROLS))
    # a cheap cascading randomisation: few images, so each method's verdict says whether it depends on the model;
    # 32 lesion images, deletion / insertion curves at 8 steps and integrated gradients at 16 (the defaults: 48, 16
    # and 32): the curves and IG are what dominate the explanations on 2 cores
    config["analyses"]["explain"].update(limit=32, sanity=["cascading"], sanity_images=4, deletion_steps=8,
                                         method_options={"ig": {"steps": 16}})
    # t-SNE only: UMAP's first call in a process compiles its numba kernels (~25 s on 2 cores)
    config["analyses"]["features"].update(projections=["tsne"])
    config["analyses"]["overlay"].update(limit=150)
    # Who does it fail for: the phantoms with two simulated scanners (a shortcut) and a random sex (no effect); the
    # rest of the demo keeps the default phantoms, so its figures and cache keys stand
    config.update(by=["site", "sex"])
    config["analyses"]["subgroups"].update(data="demo?attributes=site,sex&n_train=500&n_val=0&n_test=300",
                                           n_permutations=200, probe_permutations=20)
    if fast:
        a = config["analyses"]
        a["robustness"].update(limit=32, eps=[4 / 255, 8 / 255], attack_steps=10)  # 4/255: the control's criterion
        a["explain"].update(limit=16)
        # the ImageNet encoder takes part in features and alignment only (the scorecard says so for the other two)
        a["robustness"].update(models=DEMO_MODELS[:2])
        a["explain"].update(models=DEMO_MODELS[:2])
        a["features"].update(n_permutations=50)
        a["overlay"].update(limit=100)
        a["alignment"].update(anchors=[25, 100, 500])
    return config
