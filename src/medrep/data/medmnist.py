"""MedMNIST ``.npz`` files read from a local path: ``medmnist:PATH.npz`` or a bare ``.npz`` path.

Layout: ``{split}_images`` (N×H×W or N×H×W×3, uint8) and ``{split}_labels`` (N, N×1, or N×K) for any
of train/val/test; any sizes (subsets and non-official resolutions are fine — unlike the ``medmnist``
package, nothing is checked against the official counts).  Multi-label files (K > 1) need
``?label_column=k``.  Class names: ``?classes=a,b,c`` or ``class_0, class_1, …``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from medrep.data.base import ImageDataset, SkipLog, SplitDataset, TensorDataset, warn_if_misnormalised
from medrep.data.images import as_path, check_readable, show_path
from medrep.data.registry import register_data_scheme
from medrep.errors import BadInputError, MedrepError, Param, SpecError
from medrep.io import digest_file, digest_json
from medrep.specs import Spec, take_int_option, take_list_option

SPLITS = ("train", "val", "test")


def _images(arr: np.ndarray, key: str, where: str) -> np.ndarray:
    """N×H×W[×3] → N×C×H×W, uint8 kept as is (TensorDataset divides by 255), floats kept in [0, 1], wider
    integers (uint16, int32, …, values 0..65535) divided by 65535 whatever their maximum, as images.py does."""
    if arr.ndim == 4 and arr.shape[-1] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    elif arr.ndim == 3:
        arr = arr[:, None]
    else:
        hint = " (3-D MedMNIST volumes are not supported)" if arr.ndim == 4 else ""
        raise BadInputError(f"{key} has shape {arr.shape}; expected N×H×W or N×H×W×3{hint}", where=where)
    if arr.shape[0] and (arr.shape[2] == 0 or arr.shape[3] == 0):
        raise BadInputError(f"{key} holds zero-size images {arr.shape[2:]}", where=where)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise BadInputError(f"{key} contains NaN or infinite values", where=where)
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise BadInputError(f"{key} is float in [{arr.min():.3g}, {arr.max():.3g}]; expected uint8 or floats in [0, 1]", where=where)
        return np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind in "ui":
        # As images.py: the container's bit depth, never the data's maximum — a per-split maximum would give
        # the same raw value different intensities in train and test.
        lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
        if lo < 0 or hi > 65535:
            raise BadInputError(f"{key} is {arr.dtype} in [{lo}, {hi}], outside the 16-bit range 0..65535", where=where)
        if arr.dtype.itemsize == 1:  # int8 holding 0..127
            return np.ascontiguousarray(arr.astype(np.float32) / 255.0)
        warn_if_misnormalised(arr, f"{where}:{key}")
        if 255 < hi <= 4095:  # 10/12-bit detector data in a 16-bit container: divided by 65535 it is nearly black
            warnings.warn(f"{where}:{key}: 16-bit image uses only 12 bits (max {hi}); scaled by 65535 it will look dark", stacklevel=3)
        return np.ascontiguousarray(arr.astype(np.float32) / 65535.0)
    raise BadInputError(f"{key} has unsupported dtype {arr.dtype}", where=where)


def _labels(arr: np.ndarray, key: str, n: int, label_column: int | None, where: str) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2:
        if label_column is None:
            raise BadInputError(
                f"{key} is multi-label ({arr.shape[1]} columns); pick one with ?label_column=k (0..{arr.shape[1] - 1})", where=where
            )
        if not 0 <= label_column < arr.shape[1]:
            raise SpecError(f"label_column={label_column} is out of range (0..{arr.shape[1] - 1})", where="?label_column")
        arr = arr[:, label_column]
    elif arr.ndim != 1:
        raise BadInputError(f"{key} has shape {arr.shape}; expected N or N×1", where=where)
    if arr.shape[0] != n:
        raise BadInputError(f"{key} has {arr.shape[0]} labels for {n} images", where=where)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise BadInputError(f"{key} holds non-integer labels", where=where)
    elif arr.dtype.kind not in "uib":
        raise BadInputError(f"{key} has unsupported dtype {arr.dtype}", where=where)
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise BadInputError(f"{key} holds negative labels ({arr.min()})", where=where)
    return arr


def load_medmnist(path, options: dict[str, str] | None = None, skip_bad: bool = False,
                  skipped: SkipLog | None = None) -> ImageDataset:
    """``skip_bad``: images holding NaN / infinite values are left out (listed in ``skipped``) instead of
    failing the whole file; every other problem is a problem of the file and still raises."""
    p = as_path(path)
    where = show_path(p)
    opts = dict(options or {})
    label_column = take_int_option(opts, "label_column")
    classes = take_list_option(opts, "classes")
    if opts:
        raise SpecError(f"unknown option {sorted(opts)[0]!r} for medmnist: (known: classes, label_column)", where=Param("data"))
    check_readable(p)
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files if k.endswith(("_images", "_labels"))}
    except Exception as err:  # not a zip, truncated member, pickled arrays
        raise BadInputError(f"cannot read npz ({err.__class__.__name__}: {err})", where=where) from None
    present = [s for s in SPLITS if f"{s}_images" in data]
    if not present:
        raise MedrepError(f"no train_images / val_images / test_images arrays (found: {', '.join(sorted(data)) or 'none'})", where=where)
    images, labels, kept = {}, {}, {}
    skipped = skipped if skipped is not None else SkipLog()
    for s in present:
        if f"{s}_labels" not in data:
            raise MedrepError(f"{s}_images has no matching {s}_labels array", where=where)
        raw = data[f"{s}_images"]
        if skip_bad and raw.dtype.kind == "f" and raw.ndim >= 3:
            finite = np.isfinite(raw.reshape(raw.shape[0], -1)).all(axis=1)
            if not finite.all():
                if not finite.any():
                    raise BadInputError(f"every image of {s}_images contains NaN or infinite values", where=where)
                for i in np.flatnonzero(~finite):
                    skipped.add(
                        f"{s}/{i:06d}", f"{where}: {s}_images[{i}] contains NaN or infinite values")
                kept[s] = np.flatnonzero(finite)
        keep = kept.get(s)
        images[s] = _images(raw if keep is None else raw[keep], f"{s}_images", where)
        labels[s] = _labels(data[f"{s}_labels"], f"{s}_labels", raw.shape[0] if raw.ndim else 0, label_column, where)
        if keep is not None:
            labels[s] = labels[s][keep]
    shapes = {images[s].shape[1:] for s in present}
    if len(shapes) > 1:
        raise BadInputError(f"splits differ in image shape {sorted(shapes)}", where=where)
    n_classes = 1 + max((int(labels[s].max()) for s in present if labels[s].size), default=0)
    if classes is None:
        classes = [f"class_{i}" for i in range(n_classes)]
    elif len(classes) < n_classes:
        raise SpecError(f"{len(classes)} class names given but labels go up to {n_classes - 1}", where="?classes")
    file_digest = digest_file(p)
    parts: dict[str, ImageDataset] = {}
    for s in present:
        parts[s] = TensorDataset(
            images=images[s],
            labels=labels[s],
            classes=classes,
            ids=[f"{s}/{i:06d}" for i in (kept[s] if s in kept else range(len(labels[s])))],
            name=f"{where}:{s}",
            digest=digest_json({"npz": file_digest, "split": s, "label_column": label_column, "classes": classes,
                                **({"kept": kept[s].tolist()} if s in kept else {})}),
        )
    return SplitDataset(parts, name=where)


@register_data_scheme("medmnist", detect=lambda p: p.lower().endswith(".npz") and Path(p).is_file())
def _load(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_medmnist(spec.name, spec.options, skip_bad=skip_bad, skipped=skipped)
