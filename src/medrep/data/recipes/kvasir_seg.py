"""Kvasir-SEG (Jha et al. 2020): ``Kvasir-SEG/images/NAME.jpg`` and ``Kvasir-SEG/masks/NAME.jpg`` (JPEG masks,
thresholded at half range).  Every image shows a polyp: one class, so class-contrast analyses (probes,
collide attacks) have nothing to contrast; explanation scores against the masks are what it is for."""
from __future__ import annotations

from medrep.data.annotations import MaskFiles
from medrep.data.base import ImageDataset, SkipLog
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import expect, find_dataset_folder, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import TableBuilder
from medrep.errors import BadInputError
from medrep.specs import Spec

describe_recipe(RecipeInfo(
    name="kvasir-seg",
    reads="Kvasir-SEG/images/*.jpg, Kvasir-SEG/masks/*.jpg",
    labels="one class: polyp",
    masks="masks/ (JPEG, thresholded at 128)",
    patients="none published",
    splits="none"))


def load_kvasir(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = find_dataset_folder(recipe_root(raw, "kvasir-seg"), "images", ("Kvasir-SEG",))
    _, _, read = take_options(options, "kvasir-seg", [])
    images, masks = expect(root, ["images"], "kvasir-seg"), expect(root, ["masks"], "kvasir-seg")
    builder = TableBuilder(str(root))
    for p in sorted(images.glob("*.jpg")):
        mask = masks / p.name
        if not mask.is_file():
            raise BadInputError(f"no mask masks/{p.name} for this image", where=str(p))
        builder.add(p, p.name, f"images/{p.name}", label="polyp", mask=MaskFiles((mask,)))
    return builder.build(read, skip_bad, skipped)


@register_data_scheme("kvasir-seg")
def _kvasir(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_kvasir(spec.name, spec.options, skip_bad, skipped)
