"""One registry from data specs to Datasets.

``demo`` / ``phantoms`` (options: ``?n_train=..&modality=ultrasound&confounder_rate=0.9&seed=..&attributes=site,sex``),
``medmnist:PATH.npz``, ``csv:PATH`` or a ``.csv`` path (manifest), ``dicom:PATH`` or a ``.dcm`` file /
folder of DICOM files, ``folder:PATH`` or a class-per-folder directory, and the published-dataset recipes
of :mod:`medrep.data.recipes` (``chexpert:DIR``, ``nih-cxr14:DIR`` …).
"""
from __future__ import annotations

from typing import Any, Callable

from medrep.data.base import ImageDataset, SkipLog
from medrep.errors import Param, SpecError
from medrep.data.recipes import RECIPE_MODULES
from medrep.registry import Registry
from medrep.specs import Spec, parse_spec

DataLoaderFn = Callable[[Spec, bool, SkipLog], ImageDataset]
#: scheme → loader ``fn(spec, skip_bad, skipped) -> ImageDataset``; metadata ``detect(path) -> bool`` lets a
#: bare path pick the scheme.  The built-in sources register themselves when first needed.
DATA_SOURCES = Registry("data source", param="data", builtins=(
    "medrep.data.folders", "medrep.data.manifest", "medrep.data.dicom", "medrep.data.medmnist",
    *(f"medrep.data.recipes.{name}" for name in RECIPE_MODULES)))
_DATA = DATA_SOURCES
_DETECTORS: list[tuple[Callable[[str], bool], str]] = []


def register_data_scheme(scheme: str, detect: Callable[[str], bool] | None = None, **meta: Any):
    """Register a loader; ``detect(path)`` lets a bare path pick this scheme (e.g. by suffix)."""
    def deco(fn: DataLoaderFn) -> DataLoaderFn:
        DATA_SOURCES.register(scheme, fn, detect=detect, **meta)
        if detect is not None:
            _DETECTORS.append((detect, scheme))
        return fn
    return deco


def _coerce(options: dict[str, str], types: dict[str, type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in types:
            raise SpecError(f"unknown option {key!r} (known: {', '.join(sorted(types))})", where=Param("data"))
        t = types[key]
        try:
            out[key] = (value.lower() in ("1", "true", "yes")) if t is bool else t(value)
        except ValueError:
            raise SpecError(f"option {key}={value!r} is not a valid {t.__name__}", where=Param("data")) from None
    return out


@register_data_scheme("demo")
def _phantoms(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    from medrep.data.phantoms import PhantomConfig, load_phantoms

    opts = _coerce(spec.options, {"n_train": int, "n_val": int, "n_test": int, "size": int, "seed": int,
                                  "modality": str, "confounder_rate": float, "confounder_text": str, "attributes": str})
    if "attributes" in opts:
        from medrep.data.phantoms import ATTRIBUTES

        names = [a.strip() for a in opts["attributes"].split(",") if a.strip()]
        unknown = [a for a in names if a not in ATTRIBUTES]
        if unknown:
            raise SpecError(f"unknown phantom attribute {unknown[0]!r} in ?attributes= (choose from {', '.join(ATTRIBUTES)})",
                            where=Param("data"))
        opts["attributes"] = tuple(a for a in ATTRIBUTES if a in names)  # one order, one cache key
    return load_phantoms(PhantomConfig(**opts))


DATA_SOURCES.alias("phantoms", "demo")


def load_dataset(spec: str | ImageDataset, skip_bad: bool = False, skipped: SkipLog | None = None) -> ImageDataset:
    if isinstance(spec, ImageDataset):
        return spec
    skipped = skipped if skipped is not None else SkipLog()
    parsed = parse_spec(spec, tuple(_DATA))
    if parsed.scheme is None and parsed.name in _DATA:
        parsed = Spec(parsed.raw, parsed.name, parsed.name, None, parsed.options)
    if parsed.scheme is None:
        from pathlib import Path

        if not Path(parsed.name).exists():
            raise SpecError(f"no such file or directory (and not a known data spec: {', '.join(sorted(_DATA))})", where=parsed.name)
        for detect, scheme in _DETECTORS:
            if detect(parsed.name):
                parsed = Spec(parsed.raw, scheme, parsed.name, None, parsed.options)
                break
        else:
            raise SpecError("cannot tell what kind of dataset this is; prefix it with csv:, dicom:, folder: or medmnist:", where=parsed.name)
    return _DATA[parsed.scheme](parsed, skip_bad, skipped)


def _load_builtin_sources() -> None:
    DATA_SOURCES.names()  # importing the built-in source modules registers them
