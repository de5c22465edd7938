"""`medrep datasets`: the named dataset recipes, what each reads, its labels, masks, patients, splits, attributes and
options."""
from __future__ import annotations

import argparse

NAME = "datasets"
HELP = "list the published-dataset recipes (chexpert:DIR, nih-cxr14:DIR, …) with what they read and their options"
# Shown at the end of --help; each runs as it is (a test runs them).
EXAMPLES = (
    "medrep datasets",
    "medrep datasets --format markdown",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="text", choices=["text", "markdown"],
                   help="text (default) or the markdown table the README shows")


def recipe_table_markdown() -> str:
    from medrep.data.recipes import load_recipes

    rows = ["| spec | reads | labels | masks | patients | splits | attributes (`--by`) | options |",
            "|---|---|---|---|---|---|---|---|"]
    for info in sorted(load_recipes().values(), key=lambda r: r.name):
        opts = ", ".join(f"`{k}`" for k in info.options) or "—"
        cells = [f"`{info.name}:DIR`", info.reads, info.labels, info.masks, info.patients, info.splits, info.attributes, opts]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from medrep.data.recipes import load_recipes

    if args.format == "markdown":
        print(recipe_table_markdown())
        return 0
    for info in sorted(load_recipes().values(), key=lambda r: r.name):
        print(f"{info.name}:DIR")
        for key in ("reads", "labels", "masks", "patients", "splits", "attributes"):
            print(f"  {key + ':':<12}{getattr(info, key)}")
        for opt, text in info.options.items():
            print(f"  ?{opt}=…  {text}")
        print()
    print("Any CSV: csv:FILE?path=COL&label=COL[&patient=COL][&mask=COL][&caption=COL][&split=COL][&root=DIR]"
          "[&attributes=COL1,COL2][&boxes=BOXES.csv][&polygons=POLYGONS.csv]; multi-label: findings=COL1,COL2 | finding_list=COL | onehot=COL1,COL2")
    print("DICOM header attributes (dicom:, vindr-cxr:, rsna-pneumonia:): ?attributes=PatientSex,PatientAge,ViewPosition,"
          "Modality,BodyPartExamined,Manufacturer,ManufacturerModelName[&age_bins=18,40,65]")
    return 0
