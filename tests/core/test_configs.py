"""Every field of an analysis config is reachable from the command line and from the audit configuration,
and both front ends build the same config from the same settings."""
from __future__ import annotations

import dataclasses

import pytest

from medrep.audit.config import SCHEMA, validate_config
from medrep.cli import build_parser
from medrep.configs import check_front_ends, from_mapping, replace
from medrep.errors import MedrepError
from medrep.align.config import AlignConfig
from medrep.explain.config import ExplainConfig
from medrep.features.config import FeaturesConfig
from medrep.overlay.config import OverlayConfig
from medrep.robustness.config import AttackConfig

# each analysis config, the command that runs it and the audit section that configures it
FRONT_ENDS = [(AttackConfig, "attack", "robustness"), (ExplainConfig, "explain", "explain"),
              (FeaturesConfig, "features", "features"), (OverlayConfig, "overlay", "overlay"),
              (AlignConfig, "align", "alignment")]


def _flags(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def _keys(section: str) -> set[str]:
    top = {k for k, v in SCHEMA.items() if not isinstance(v, dict)}
    return top | set(SCHEMA["analyses"][section])


@pytest.mark.parametrize("config_type, command, section", FRONT_ENDS)
def test_every_config_field_has_a_flag_and_an_audit_key(config_type, command, section):
    assert dataclasses.is_dataclass(config_type) and config_type.__dataclass_params__.frozen
    assert check_front_ends(config_type, _flags(command), _keys(section)) == []


# fields one front end cannot set, and why: the list is short and each entry deliberate
ONE_SIDED = {
    "AttackConfig.relative_step": "cli audit",  # the front ends set the step itself (--step-size)
    "AttackConfig.representation_fn": "cli audit",  # a Python function
    "AttackConfig.protocol": "audit",  # a protocol fixes ε, attacks, steps and the item count: a run of its own
    "ExplainConfig.skip_unsupported": "cli audit",  # each front end decides
    "ExplainConfig.method_options": "cli",  # each option has a flag of its own (--ig-steps, --block, …)
    "AlignConfig.estimator_options": "cli",  # each option has a flag of its own (--affine-solver, …)
    "OverlayConfig.text_aligned": "audit",  # the audit's `text` is the caption-alignment encoder, never the overlay's
    **{f"ExplainConfig.{name}": "audit" for name in ("protocol", "threshold", "tune_split", "probability_cutoff", "miou_on")},
}


@pytest.mark.parametrize("config_type, command, section", FRONT_ENDS)
def test_only_the_listed_fields_are_out_of_a_front_ends_reach(config_type, command, section):
    for f in dataclasses.fields(config_type):
        missing = " ".join(end for end in ("cli", "audit") if not f.metadata.get(end, True))
        assert missing == ONE_SIDED.get(f"{config_type.__name__}.{f.name}", ""), f"{config_type.__name__}.{f.name}"
        assert f.metadata.get("help"), f"{config_type.__name__}.{f.name} has no help"


@pytest.mark.parametrize("config_type, command, section", FRONT_ENDS)
def test_the_audit_builds_every_config_from_its_defaults(config_type, command, section):
    """Every audit key of a config's section reaches the config (from_mapping reads them all)."""
    audit = validate_config({})
    config = from_mapping(config_type, {**audit, **audit["analyses"][section]}, by="key")
    assert isinstance(config, config_type)


def test_a_missing_flag_or_key_is_reported():
    problems = check_front_ends(FeaturesConfig, {"--k"}, {"k"})
    assert "FeaturesConfig.mutual_k: no flag --mutual-k" in problems
    assert "FeaturesConfig.n_permutations: no audit key 'n_permutations'" in problems


def test_the_cli_and_the_audit_build_the_same_features_config():
    args = build_parser().parse_args(["features", "--model", "demo-cnn", "--out", "x", "--k", "7", "--cka", "unbiased",
                                      "--draws", "3", "--layer", "blocks.0"])
    from_cli = from_mapping(FeaturesConfig, vars(args), by="dest", shots=(1, 5, 10), projections=("tsne", "umap"),
                            test_split="test", n_boot=200)
    audit = validate_config({"analyses": {"features": {"k": 7, "cka": "unbiased", "draws": 3, "layers": ["blocks.0"]}}})
    from_audit = from_mapping(FeaturesConfig, {**audit, **audit["analyses"]["features"]}, by="key", n_boot=200)
    normal = lambda c: {f.name: tuple(v) if isinstance(v := getattr(c, f.name), list) else v  # noqa: E731
                        for f in dataclasses.fields(c)}
    assert normal(from_cli) == normal(from_audit)
    assert from_cli.k == 7 and from_cli.cka_estimator == "unbiased" and from_cli.n_draws == 3


def test_replacing_an_unknown_setting_names_it():
    with pytest.raises(MedrepError, match="^neighbours: FeaturesConfig has no setting 'neighbours'"):
        replace(FeaturesConfig(), neighbours=3)
    assert replace(FeaturesConfig(), k=3).k == 3
