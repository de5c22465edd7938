"""BUSI, breast ultrasound (Al-Dhabyani et al. 2020): ``Dataset_BUSI_with_GT/{benign,malignant,normal}/`` with
``benign (1).png`` and its masks ``benign (1)_mask.png``, ``benign (1)_mask_1.png`` … (merged: several lesions)."""
from __future__ import annotations

import re
from pathlib import Path

from medrep.data.annotations import MaskFiles
from medrep.data.base import ImageDataset, SkipLog
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import find_dataset_folder, listing, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import TableBuilder
from medrep.errors import MedrepError
from medrep.specs import Spec

CLASSES = ("benign", "malignant", "normal")
MASK = re.compile(r"^(?P<stem>.+)_mask(?:_\d+)?$")

describe_recipe(RecipeInfo(
    name="busi",
    reads="Dataset_BUSI_with_GT/{benign,malignant,normal}/NAME (N).png with NAME (N)_mask.png, _mask_1.png …",
    labels="benign / malignant / normal (the folder)",
    masks="the _mask.png files, several per image merged",
    patients="none published",
    splits="none (medrep draws 70/30 where it needs two)"))


def load_busi(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = find_dataset_folder(recipe_root(raw, "busi"), "benign", ("Dataset_BUSI_with_GT",))
    _, _, read = take_options(options, "busi", [])
    present = [c for c in CLASSES if (root / c).is_dir()]
    if len(present) < 2:
        raise MedrepError(f"busi: expected the folders benign/, malignant/ and normal/ (Dataset_BUSI_with_GT), "
                          f"found {listing(root)}", where=str(root))
    builder = TableBuilder(str(root))
    for cls in present:
        images: dict[str, Path] = {}
        masks: dict[str, list[Path]] = {}
        for p in sorted((root / cls).glob("*.png")):
            m = MASK.match(p.stem)
            if m:
                masks.setdefault(m.group("stem"), []).append(p)
            else:
                images[p.stem] = p
        for stem, path in sorted(images.items(), key=lambda kv: _number(kv[0])):
            found = sorted(masks.get(stem, []), key=lambda q: (len(q.stem), q.stem))
            builder.add(path, f"{cls}/{path.name}", f"{root.name}/{cls}/{path.name}", label=cls,
                        mask=MaskFiles(tuple(found)) if found else None)
    return builder.build(read, skip_bad, skipped)


def _number(stem: str) -> tuple[int, str]:
    m = re.search(r"\((\d+)\)", stem)
    return (int(m.group(1)) if m else -1, stem)


@register_data_scheme("busi")
def _busi(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_busi(spec.name, spec.options, skip_bad, skipped)
