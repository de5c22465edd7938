"""APTOS 2019 blindness detection: ``train.csv`` (``id_code,diagnosis``: DR grade 0–4) and ``train_images/ID.png``.
The Kaggle test set (``test.csv``, ``test_images/``) has no labels and is not read."""
from __future__ import annotations

from medrep.data.base import ImageDataset, SkipLog
from medrep.data.recipes import RecipeInfo, describe_recipe
from medrep.data.recipes.common import expect, recipe_root, take_options
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder
from medrep.errors import BadInputError
from medrep.specs import Spec

GRADES = ("0", "1", "2", "3", "4")

describe_recipe(RecipeInfo(
    name="aptos",
    reads="train.csv (id_code, diagnosis), train_images/ID.png",
    labels="diabetic-retinopathy grade 0–4",
    masks="none",
    patients="none published",
    splits="none (the test set is unlabelled; medrep draws 70/30 where it needs two)"))


def load_aptos(raw: str, options: dict[str, str], skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    root = recipe_root(raw, "aptos")
    _, _, read = take_options(options, "aptos", [])
    table = CsvTable(expect(root, ["train.csv"], "aptos"))
    images = expect(root, ["train_images"], "aptos")
    ident, grade = table.column("id_code"), table.column("diagnosis")
    builder = TableBuilder(table.where)
    for line, values in table.rows():
        origin = f"{table.where} row {line}"
        g = values[grade].strip()
        if g not in GRADES:
            raise BadInputError(f"diagnosis {g!r} is not a grade 0–4", where=origin)
        name = values[ident].strip()
        builder.add(images / f"{name}.png", name, origin, label=g)
    return builder.build(read, skip_bad, skipped, classes=list(GRADES))


@register_data_scheme("aptos")
def _aptos(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_aptos(spec.name, spec.options, skip_bad, skipped)
