"""The one dataset abstraction: items with raw pixels in [0, 1] (float, C×H×W), label, mask, caption, id.

Normalisation belongs to the Encoder, so attacks and overlays act on what the user sees.
"""
from __future__ import annotations

import warnings
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from medrep.errors import BadInputError, MedrepError, Param
from medrep.io import digest_bytes, digest_json


@dataclass
class SecondReading:
    """Another reader's annotation of the same image and finding (CheXlocalize's human benchmark): a mask at the
    image's size, and the points that reader marked as most representative ((K, 2) x, y in pixels; None when the
    source has no points, an empty array when the reader marked none)."""

    mask: torch.Tensor  # bool, H×W (all False: this reader outlined nothing)
    points: np.ndarray | None = None


@dataclass
class Item:
    id: str
    image: torch.Tensor  # float32, C×H×W, in [0, 1]
    label: int
    mask: torch.Tensor | None = None  # bool, H×W
    caption: str | None = None
    patient: str | None = None  # images of one patient are split and resampled together
    attributes: dict[str, str] = field(default_factory=dict)  # sex, age bin, site, view …: never used as labels
    second_reader: SecondReading | None = None  # a second reader's annotation, where the source has one


@dataclass
class SkipLog:
    """What ``--skip-bad`` left out, for the manifest."""

    skipped: list[dict[str, str]] = field(default_factory=list)

    def add(self, where: str, problem: str) -> None:
        self.skipped.append({"item": where, "problem": problem})


class ImageDataset:
    """Indexable labelled images.  Subclasses implement ``__len__``, ``_load(i)`` and ``content_digest``.

    ``classes`` maps label index → class name.  ``split`` returns the subset for one split name.
    """

    classes: list[str]
    name: str = "dataset"

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load(self, index: int) -> Item:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> Item:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        item = self._load(index)
        validate_item(item)
        return item

    def __iter__(self) -> Iterator[Item]:
        for i in range(len(self)):
            yield self[i]

    @property
    def ids(self) -> list[str]:
        return [self.item_id(i) for i in range(len(self))]

    def item_id(self, index: int) -> str:
        return self._load(index).id

    def has_lesion(self, index: int) -> bool:
        """Whether item ``index`` has a non-empty mask (subclasses read the mask alone, not the image)."""
        mask = self._load(index).mask
        return mask is not None and bool(mask.any())

    @property
    def labels(self) -> np.ndarray:
        return np.array([self[i].label for i in range(len(self))], dtype=np.int64)

    @property
    def has_masks(self) -> bool:
        return False

    @property
    def has_second_reader(self) -> bool:
        """Whether every item carries a second reader's annotation (:class:`SecondReading`)."""
        return False

    @property
    def has_captions(self) -> bool:
        return False

    @property
    def patients(self) -> np.ndarray | None:
        """Patient id per item (object array), or None when the source has no patient ids."""
        return None

    @property
    def attribute_names(self) -> list[str]:
        """Names of the item attributes this dataset carries (sex, age, site, view …)."""
        return []

    def attribute_values(self, name: str) -> np.ndarray:
        """The attribute ``name`` per item (object array of strings, "" where unknown)."""
        if name not in self.attribute_names:
            known = ", ".join(self.attribute_names) or "none"
            raise MedrepError(f"unknown attribute {name!r} (this dataset has: {known})", where="by")
        return np.array([self._load(i).attributes.get(name, "") for i in range(len(self))], dtype=object)

    @property
    def findings(self) -> list[str]:
        """Finding names of a multi-label source (then ``finding_matrix`` holds the labels); [] otherwise."""
        return []

    @property
    def finding_matrix(self) -> np.ndarray | None:
        """(N, F) float: 1 positive, 0 negative, NaN not used for that finding; None for single-label data."""
        return None

    @property
    def splits(self) -> list[str]:
        return []

    def split(self, name: str | None) -> "ImageDataset":
        if name is None or name == "all":
            return self
        raise MedrepError(f"this dataset has no split {name!r} (available: {self.splits or ['all']})", where=Param("split"))

    def content_digest(self) -> str:
        """Digest of ids and content: the data part of every cache key."""
        raise NotImplementedError

    def subset(self, indices: Sequence[int]) -> "Subset":
        return Subset(self, list(indices))

    def limit(self, n: int | None, seed: int = 0) -> "ImageDataset":
        """The first ``n`` items of a seeded, class-balanced-ish shuffle (deterministic)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise MedrepError("must be a positive number", where=Param("limit"))
        order = np.random.default_rng(seed).permutation(len(self))
        return self.subset(sorted(order[:n].tolist()))

    def describe(self) -> dict[str, Any]:
        labels = self.labels
        out = {
            "name": self.name,
            "n": len(self),
            "classes": self.classes,
            "class_counts": {c: int((labels == i).sum()) for i, c in enumerate(self.classes)},
        }
        fm = self.finding_matrix
        if fm is not None:
            out["findings"] = {f: {"positive": int((fm[:, j] == 1).sum()), "negative": int((fm[:, j] == 0).sum()),
                                   "unused": int(np.isnan(fm[:, j]).sum())} for j, f in enumerate(self.findings)}
        patients = self.patients
        if patients is not None:
            out["n_patients"] = len(set(patients.tolist()))
        return out


class Subset(ImageDataset):
    def __init__(self, parent: ImageDataset, indices: list[int]):
        self.parent = parent
        self.indices = indices
        self.classes = parent.classes
        self.name = parent.name

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, index: int) -> Item:
        return self.parent._load(self.indices[index])

    def item_id(self, index: int) -> str:
        return self.parent.item_id(self.indices[index])

    def has_lesion(self, index: int) -> bool:
        return self.parent.has_lesion(self.indices[index])

    @property
    def labels(self) -> np.ndarray:
        return self.parent.labels[self.indices]

    @property
    def has_masks(self) -> bool:
        return self.parent.has_masks

    @property
    def has_second_reader(self) -> bool:
        return self.parent.has_second_reader

    @property
    def has_captions(self) -> bool:
        return self.parent.has_captions

    @property
    def patients(self) -> np.ndarray | None:
        parent = self.parent.patients
        return None if parent is None else parent[self.indices]

    @property
    def attribute_names(self) -> list[str]:
        return self.parent.attribute_names

    def attribute_values(self, name: str) -> np.ndarray:
        return self.parent.attribute_values(name)[self.indices]

    @property
    def findings(self) -> list[str]:
        return self.parent.findings

    @property
    def finding_matrix(self) -> np.ndarray | None:
        parent = self.parent.finding_matrix
        return None if parent is None else parent[self.indices]

    def content_digest(self) -> str:
        return digest_json({"parent": self.parent.content_digest(), "indices": digest_bytes(np.asarray(self.indices).tobytes())})


class TensorDataset(ImageDataset):
    """In-memory images (N×C×H×W in [0, 1]); what phantoms, npz files and tests use."""

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        classes: Sequence[str],
        ids: Sequence[str] | None = None,
        masks: torch.Tensor | np.ndarray | None = None,
        captions: Sequence[str] | None = None,
        name: str = "tensors",
        digest: str | None = None,
        patients: Sequence[str] | None = None,
        attributes: dict[str, Sequence[str]] | None = None,
    ):
        self.images = torch.as_tensor(images)
        if self.images.ndim == 3:
            self.images = self.images[:, None]
        self._labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        n = self.images.shape[0]
        self._ids = list(ids) if ids is not None else [f"{name}-{i:06d}" for i in range(n)]
        self.masks = torch.as_tensor(masks).bool() if masks is not None else None
        self.captions = list(captions) if captions is not None else None
        self.name = name
        self._digest = digest
        if len(self._labels) != n or len(self._ids) != n:
            raise MedrepError(f"{n} images but {len(self._labels)} labels and {len(self._ids)} ids", where=name)
        self._patients = np.array([str(p) for p in patients], dtype=object) if patients is not None else None
        self._attributes = {k: np.array([str(v) for v in vals], dtype=object) for k, vals in (attributes or {}).items()}
        for what, values in [("patients", self._patients), *self._attributes.items()]:
            if values is not None and len(values) != n:
                raise MedrepError(f"{n} images but {len(values)} values of {what}", where=name)
        if self.masks is not None and tuple(self.masks.shape[-2:]) != tuple(self.images.shape[-2:]):
            raise BadInputError(
                f"mask shape {tuple(self.masks.shape[-2:])} does not match image shape {tuple(self.images.shape[-2:])}",
                where=name,
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def _load(self, index: int) -> Item:
        img = self.images[index]
        if img.dtype == torch.uint8:
            img = img.float() / 255.0
        return Item(
            id=self._ids[index],
            image=img.float(),
            label=int(self._labels[index]),
            mask=self.masks[index] if self.masks is not None else None,
            caption=self.captions[index] if self.captions is not None else None,
            patient=str(self._patients[index]) if self._patients is not None else None,
            attributes={k: str(v[index]) for k, v in self._attributes.items()},
        )

    @property
    def patients(self) -> np.ndarray | None:
        return self._patients

    @property
    def attribute_names(self) -> list[str]:
        return list(self._attributes)

    def attribute_values(self, name: str) -> np.ndarray:
        if name not in self._attributes:
            return super().attribute_values(name)
        return self._attributes[name]

    def item_id(self, index: int) -> str:
        return self._ids[index]

    def has_lesion(self, index: int) -> bool:
        return self.masks is not None and bool(self.masks[index].any())

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    @property
    def has_captions(self) -> bool:
        return self.captions is not None

    def content_digest(self) -> str:
        if self._digest is None:
            parts = [self.images.contiguous().numpy().tobytes(), self._labels.tobytes(), "\0".join(self._ids).encode()]
            if self.masks is not None:
                parts.append(self.masks.numpy().tobytes())
            # patients and attributes join the key only when present, so existing keys stay as they were
            if self._patients is not None:
                parts.append(("patients\0" + "\0".join(self._patients)).encode())
            for k, v in sorted(self._attributes.items()):
                parts.append((f"attr:{k}\0" + "\0".join(v)).encode())
            self._digest = digest_bytes(*parts)
        return self._digest


def validate_item(item: Item) -> None:
    """Refuse images and masks that would silently poison every analysis."""
    img = item.image
    if img.ndim != 3 or img.shape[0] not in (1, 3) or img.shape[1] == 0 or img.shape[2] == 0:
        raise BadInputError(f"image has shape {tuple(img.shape)}; expected C×H×W with C in (1, 3) and H, W > 0", where=item.id)
    if not _all_finite(img):
        raise BadInputError("image contains NaN or infinite values", where=item.id)
    if item.mask is not None and tuple(item.mask.shape) != tuple(img.shape[1:]):
        raise BadInputError(
            f"mask shape {tuple(item.mask.shape)} does not match image shape {tuple(img.shape[1:])}", where=item.id
        )
    second = item.second_reader
    if second is not None and tuple(second.mask.shape) != tuple(img.shape[1:]):
        raise BadInputError(f"second reader's mask shape {tuple(second.mask.shape)} does not match image shape "
                            f"{tuple(img.shape[1:])}", where=item.id)


def _all_finite(t: torch.Tensor) -> bool:
    if not t.is_floating_point():
        return True
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64, torch.float16):
        # numpy is single-threaded here: torch's kernel wakes its thread pool for every item, which costs
        # milliseconds per image on a busy machine (a tenth of a ViT-S forward pass)
        return bool(np.isfinite(t.detach().numpy()).all())
    return bool(torch.isfinite(t).all())


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``; plain CPU tensors are stacked by numpy in one thread instead, bit for bit the same:
    torch's parallel copy wakes its thread pool once per input, which on a busy machine costs more than
    the copy (≈0.2 s per batch of 32 ViT-S images with 2 threads, vs 4 ms)."""
    if all(t.device.type == "cpu" and not t.requires_grad for t in tensors):
        try:
            return torch.from_numpy(np.stack([t.numpy() for t in tensors]))
        except (TypeError, RuntimeError, ValueError):  # dtypes numpy lacks (bfloat16), views numpy cannot take
            pass
    return torch.stack(tensors)


def resize_item(item: Item, size: Sequence[int], interpolation: str = "bilinear", resize: str = "stretch",
                crop_pct: float = 1.0) -> Item:
    """The item at ``size`` (H, W) by ``resize`` mode (see :mod:`medrep.geometry`): the image with
    ``interpolation``, the mask through the same geometry with nearest neighbour (it stays binary and aligned)."""
    size = tuple(int(v) for v in size)
    if tuple(item.image.shape[-2:]) == size:
        return item
    from medrep.geometry import fit_to_size

    image = fit_to_size(item.image[None].float(), size, interpolation, resize, crop_pct)[0].clamp(0, 1)
    mask = None
    if item.mask is not None:
        m = torch.as_tensor(item.mask)
        mask = fit_to_size(m[None, None].float(), size, "nearest", resize, crop_pct)[0, 0].to(m.dtype)
    # a second reader is scored at the original size only (its points are original pixels): not carried along
    return dataclasses.replace(item, image=image, mask=mask, second_reader=None)


def collate(items: Sequence[Item], size: Sequence[int] | None = None, interpolation: str = "bilinear",
            resize: str = "stretch", crop_pct: float = 1.0) -> dict[str, Any]:
    """Stack items into a batch.  With ``size`` (the model's input size; pass an encoder's
    ``preprocessing.fit_kwargs()``) items of other sizes are brought to it first, so mixed-size data (e.g.
    DICOM series) batch; without it, differing sizes are an input problem named by id."""
    if size is not None:
        items = [resize_item(it, size, interpolation, resize, crop_pct) for it in items]
    shapes = {tuple(it.image.shape) for it in items}
    if len(shapes) > 1:
        raise BadInputError(
            f"images in one batch differ in shape {sorted(shapes)}; resize them or let the encoder's preprocessing do it",
            where=items[0].id,
        )
    masks = [it.mask for it in items]
    return {
        "id": [it.id for it in items],
        "image": _stack([it.image for it in items]),
        "label": torch.tensor([it.label for it in items], dtype=torch.long),
        "mask": _stack(masks) if all(m is not None for m in masks) else None,
        "caption": [it.caption for it in items],
    }


def warn_if_misnormalised(raw: np.ndarray, where: str) -> None:
    """Raw pixel values that look like they came from a different bit depth than assumed."""
    if raw.dtype.kind in "ui" and raw.dtype.itemsize >= 2 and raw.max(initial=0) <= 255 and raw.max(initial=0) > 1:
        warnings.warn(f"{where}: 16-bit image uses only the 8-bit range (max {raw.max()}); check the bit depth", stacklevel=3)
    if raw.dtype.kind == "f" and (raw.max(initial=0) > 1.5 or raw.min(initial=0) < -0.5):
        warnings.warn(
            f"{where}: float image in [{raw.min():.3g}, {raw.max():.3g}] is outside [0, 1]; it was min-max rescaled", stacklevel=3
        )


class SplitDataset(ImageDataset):
    """Named splits of one dataset (train / val / test …); as a whole, their concatenation."""

    def __init__(self, parts: dict[str, ImageDataset], name: str):
        if not parts:
            raise MedrepError("dataset has no items", where=name)
        self.parts = parts
        self.name = name
        first = next(iter(parts.values()))
        self.classes = first.classes
        self._offsets = np.cumsum([0] + [len(p) for p in parts.values()])
        self._order = list(parts)

    @property
    def splits(self) -> list[str]:
        return list(self.parts)

    def split(self, name: str | None) -> ImageDataset:
        if name is None or name == "all":
            return self
        if name not in self.parts:
            raise MedrepError(f"no split {name!r} in {self.name} (available: {', '.join(self.parts)})", where=Param("split"))
        return self.parts[name]

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, index: int) -> tuple[ImageDataset, int]:
        k = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return self.parts[self._order[k]], index - int(self._offsets[k])

    def _load(self, index: int) -> Item:
        part, j = self._locate(index)
        return part._load(j)

    def item_id(self, index: int) -> str:
        part, j = self._locate(index)
        return part.item_id(j)

    def has_lesion(self, index: int) -> bool:
        part, j = self._locate(index)
        return part.has_lesion(j)

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([p.labels for p in self.parts.values()])

    @property
    def has_masks(self) -> bool:
        return all(p.has_masks for p in self.parts.values())

    @property
    def has_second_reader(self) -> bool:
        return all(p.has_second_reader for p in self.parts.values())

    @property
    def has_captions(self) -> bool:
        return all(p.has_captions for p in self.parts.values())

    @property
    def patients(self) -> np.ndarray | None:
        parts = [p.patients for p in self.parts.values()]
        return None if any(x is None for x in parts) else np.concatenate(parts)

    @property
    def attribute_names(self) -> list[str]:
        names = [p.attribute_names for p in self.parts.values()]
        return [n for n in names[0] if all(n in other for other in names[1:])]

    def attribute_values(self, name: str) -> np.ndarray:
        if name not in self.attribute_names:
            return super().attribute_values(name)
        return np.concatenate([p.attribute_values(name) for p in self.parts.values()])

    @property
    def findings(self) -> list[str]:
        return next(iter(self.parts.values())).findings

    @property
    def finding_matrix(self) -> np.ndarray | None:
        parts = [p.finding_matrix for p in self.parts.values()]
        return None if any(x is None for x in parts) else np.concatenate(parts)

    def content_digest(self) -> str:
        return digest_json({k: p.content_digest() for k, p in self.parts.items()})
