"""tests/ mirrors src/medrep/: a module with behaviour of its own has a test file of the same name in the mirrored
folder (src/medrep/explain/run.py → tests/explain/test_run.py; a top-level module → tests/core/; cli.py →
tests/commands/test_cli.py).  A module that is tested elsewhere, or has no behaviour of its own, is listed below
with the reason, so adding a module without tests fails here until it gets a test file or an entry."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "medrep"
TESTS = ROOT / "tests"

# No behaviour of its own: declarations (registries filled elsewhere, dataclasses, constants) or re-export shims.
NO_BEHAVIOUR = {
    "features/cache.py": "re-export of medrep.embeddings.cache (old import path)",
    "features/extract.py": "re-export of medrep.embeddings.extract (old import path)",
    "overlay/registry.py": "the table of text positions (its use: tests/overlay/test_render.py)",
    "features/registry.py": "the projections' registry; entries live in features/projection.py",
    "align/config.py": "the AlignConfig dataclass (its fields' reach: tests/core/test_configs.py)",
    "features/config.py": "the FeaturesConfig dataclass (its fields' reach: tests/core/test_configs.py)",
    "overlay/config.py": "the OverlayConfig dataclass (its fields' reach: tests/core/test_configs.py)",
    "backends/local.py": "the in-process loop, three lines (its contract: tests/backends/test_units.py)",
}

# Tested, but in another file: module → the test file(s) that cover it.
COVERED_ELSEWHERE = {
    "__main__.py": ["tests/commands/test_cli.py"],  # `python -m medrep` runs cli.main
    "_compat.py": ["tests/models/test_module_and_timm.py"],  # `import medrep` runs it; every timm load needs it
    "devices.py": ["tests/audit/test_privacy.py", "tests/audit/test_runner.py"],  # --device cpu through the audit
    "align/functional.py": ["tests/align/test_estimators.py"],  # the estimators are thin wrappers around it
    "align/outputs.py": ["tests/align/test_run.py"],  # write_align_outputs on a real run
    "align/registry.py": ["tests/core/test_extending.py"],  # a throwaway estimator registered and run
    "align/result.py": ["tests/align/test_run.py"],
    "commands/common.py": ["tests/core/test_vocabulary.py", "tests/core/test_error_places.py"],  # shared flags
    "commands/demo.py": ["tests/core/test_vocabulary.py", "tests/audit/test_demo_config.py"],  # its example runs
    "data/ages.py": ["tests/subgroups/test_stats.py"],  # age bands, read where subgroups use them
    "data/autosplit.py": ["tests/data/test_patients.py", "tests/features/test_scale_down.py"],
    "data/base.py": ["tests/data/test_folders.py", "tests/data/test_manifest.py", "tests/data/test_patients.py"],
    "data/dicom.py": ["tests/data/test_dicom_source.py", "tests/data/test_dicom_codecs.py"],
    "data/dicom_pixels.py": ["tests/data/test_dicom_source.py", "tests/data/test_dicom_codecs.py"],
    "data/files.py": ["tests/data/test_folders.py", "tests/data/test_dicom_codecs.py"],
    "data/findings.py": ["tests/data/test_csv_mapping.py"],
    "data/paths.py": ["tests/data/test_images.py", "tests/reliability/test_properties.py"],
    "data/registry.py": ["tests/data/test_recipes.py", "tests/data/test_manifest.py", "tests/core/test_extending.py"],
    "data/tables.py": ["tests/data/test_manifest.py", "tests/data/test_csv_mapping.py"],
    # every recipe reads a small tree in its dataset's published layout, and runs through the commands
    **{f"data/recipes/{name}.py": ["tests/data/test_recipes.py", "tests/data/test_recipes_cli.py"]
       for name in ("aptos", "busi", "chexlocalize", "chexpert", "common", "isic", "kvasir_seg", "mimic_cxr", "mura",
                    "nih_cxr14", "rsna_pneumonia", "vindr_cxr")},
    "embeddings/cache.py": ["tests/embeddings/test_extract.py", "tests/reliability/test_cache_integrity.py"],
    "errors.py": ["tests/core/test_error_places.py"],
    "explain/chexlocalize.py": ["tests/explain/test_protocols.py"],
    "explain/chung2025.py": ["tests/explain/test_protocols.py"],
    "explain/config.py": ["tests/explain/test_run.py", "tests/core/test_configs.py"],
    "explain/faithfulness.py": ["tests/explain/test_scores.py"],
    "explain/lrp.py": ["tests/explain/test_methods.py", "tests/families/test_timm_vit.py"],
    "explain/outputs.py": ["tests/explain/test_run.py", "tests/explain/test_sanity.py"],
    "explain/registry.py": ["tests/core/test_extending.py"],
    "explain/road.py": ["tests/explain/test_protocols.py"],
    "explain/similarity.py": ["tests/explain/test_sanity.py"],
    "explain/targets.py": ["tests/explain/test_methods.py", "tests/explain/test_run.py"],
    "explain/verdict.py": ["tests/explain/test_demo_sanity.py", "tests/audit/test_demo_config.py"],
    "features/figures.py": ["tests/features/test_run.py", "tests/audit/test_demo_figures.py"],
    "features/multilabel.py": ["tests/data/test_recipes_cli.py", "tests/data/test_csv_mapping.py"],
    "features/outputs.py": ["tests/features/test_run.py", "tests/commands/test_features.py"],
    "features/projection.py": ["tests/features/test_run.py"],
    "features/result.py": ["tests/features/test_run.py"],
    "manifest.py": ["tests/commands/test_extract.py", "tests/reliability/test_determinism.py"],
    "models/builtin.py": ["tests/features/test_demo_models.py", "tests/explain/test_demo_models.py"],
    "models/demo.py": ["tests/features/test_demo_models.py", "tests/robustness/test_demo_strength.py"],
    "models/file_adapter.py": ["tests/models/test_checkpoints.py"],
    "models/registry.py": ["tests/models/test_module_and_timm.py", "tests/core/test_vocabulary.py"],
    "models/timm_adapter.py": ["tests/models/test_module_and_timm.py", "tests/families/test_timm_vit.py"],
    "overlay/outputs.py": ["tests/overlay/test_run.py", "tests/commands/test_features.py"],
    "overlay/zero_shot.py": ["tests/overlay/test_run.py"],
    "partial.py": ["tests/reliability/test_kill_resume.py", "tests/robustness/test_run.py"],
    "plotting.py": ["tests/report/test_html.py"],
    "progress.py": ["tests/audit/test_runner.py"],
    "registry.py": ["tests/core/test_extending.py"],  # the generic registry, with its own cases there
    "report/browser.py": ["tests/audit/test_browser.py"],  # needs the tiny audit fixture of tests/audit
    "results.py": ["tests/core/test_intervals.py", "tests/core/test_io.py"],
    "robustness/config.py": ["tests/robustness/test_run.py", "tests/core/test_configs.py"],
    "robustness/criteria.py": ["tests/robustness/test_apgd_square.py"],  # early exit by each criterion
    "robustness/objectives.py": ["tests/robustness/test_attacks.py", "tests/core/test_extending.py"],
    "robustness/outputs.py": ["tests/robustness/test_run.py", "tests/audit/test_robustness_reading.py"],
    "robustness/registry.py": ["tests/core/test_extending.py"],
    "robustness/result.py": ["tests/robustness/test_run.py"],
    "specs.py": ["tests/models/test_module_and_timm.py", "tests/core/test_vocabulary.py"],
    "subgroups/config.py": ["tests/subgroups/test_features_by.py"],
    "subgroups/items.py": ["tests/subgroups/test_attack_explain_by.py"],
    "subgroups/outputs.py": ["tests/subgroups/test_features_by.py", "tests/subgroups/test_audit_subgroups.py"],
    "subgroups/result.py": ["tests/subgroups/test_features_by.py"],
    "subgroups/run.py": ["tests/subgroups/test_features_by.py", "tests/subgroups/test_audit_subgroups.py"],
    "subgroups/separability.py": ["tests/subgroups/test_stats.py"],
    "subgroups/shortcut.py": ["tests/subgroups/test_stats.py"],
}


def modules() -> list[str]:
    return sorted(p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if p.name != "__init__.py")


def mirror(module: str) -> Path:
    """The test file a module's tests belong in."""
    parts = module.split("/")
    stem = parts[-1].removesuffix(".py")
    if module == "cli.py":
        return TESTS / "commands" / "test_cli.py"
    folder = TESTS.joinpath(*parts[:-1]) if len(parts) > 1 else TESTS / "core"
    return folder / f"test_{stem}.py"


def test_every_module_has_its_test_file_or_says_why_not():
    missing = [m for m in modules() if not mirror(m).exists() and m not in NO_BEHAVIOUR and m not in COVERED_ELSEWHERE]
    assert not missing, ("modules without a mirrored test file; add tests/<folder>/test_<module>.py, or list the module in "
                         "NO_BEHAVIOUR / COVERED_ELSEWHERE of tests/core/test_layout.py with the reason: " + ", ".join(missing))


def test_the_exceptions_are_current():
    known = set(modules())
    listed = set(NO_BEHAVIOUR) | set(COVERED_ELSEWHERE)
    assert not set(NO_BEHAVIOUR) & set(COVERED_ELSEWHERE)
    assert not listed - known, f"listed modules that no longer exist: {sorted(listed - known)}"
    # a module that has its own test file now comes off the list
    mirrored = sorted(m for m in listed if mirror(m).exists())
    assert not mirrored, f"these have their own test file now; take them off the lists: {mirrored}"
    absent = sorted({t for files in COVERED_ELSEWHERE.values() for t in files if not (ROOT / t).exists()})
    assert not absent, f"COVERED_ELSEWHERE names test files that do not exist: {absent}"


def test_the_mirror_rule():
    assert mirror("explain/run.py") == TESTS / "explain" / "test_run.py"
    assert mirror("geometry.py") == TESTS / "core" / "test_geometry.py"
    assert mirror("cli.py") == TESTS / "commands" / "test_cli.py"
    assert mirror("data/recipes/isic.py") == TESTS / "data" / "recipes" / "test_isic.py"
