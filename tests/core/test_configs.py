"""Every field of an analysis config is reachable from the command line and from the audit configuration,
and both front ends build the same config from the same settings."""
from __future__ import annotations

import dataclasses

import pytest

from medrep.audit.config import SCHEMA, validate_config
from medrep.cli import build_parser
from medrep.configs import check_front_ends, from_mapping, replace
from medrep.errors import MedrepError
from medrep.features.config import FeaturesConfig


def _flags(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def _keys(section: str) -> set[str]:
    top = {k for k, v in SCHEMA.items() if not isinstance(v, dict)}
    return top | set(SCHEMA["analyses"][section])


@pytest.mark.parametrize("config_type, command, section", [(FeaturesConfig, "features", "features")])
def test_every_config_field_has_a_flag_and_an_audit_key(config_type, command, section):
    assert dataclasses.is_dataclass(config_type) and config_type.__dataclass_params__.frozen
    assert check_front_ends(config_type, _flags(command), _keys(section)) == []


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
