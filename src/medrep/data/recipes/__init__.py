"""Named recipes: published medical-imaging datasets read in their published layout, unmodified.

Each recipe is one module here that registers a data scheme (``chexpert:DIR`` …) and describes itself with
:func:`describe_recipe`; ``medrep datasets`` and the README table list these descriptions.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

RECIPE_MODULES = ("chexpert", "mimic_cxr", "nih_cxr14", "isic", "aptos", "busi", "kvasir_seg", "mura", "vindr_cxr",
                  "rsna_pneumonia", "chexlocalize")


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    reads: str  # the files the recipe reads
    labels: str
    masks: str
    patients: str
    splits: str
    options: dict[str, str] = field(default_factory=dict)  # option → help
    attributes: str = "none"  # the item attributes it carries (the names --by takes)


RECIPES: dict[str, RecipeInfo] = {}


def describe_recipe(info: RecipeInfo) -> RecipeInfo:
    RECIPES[info.name] = info
    return info


def load_recipes() -> dict[str, RecipeInfo]:
    for mod in RECIPE_MODULES:
        importlib.import_module(f"medrep.data.recipes.{mod}")
    return RECIPES
