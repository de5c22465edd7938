"""One vocabulary: every option has help and shows its default, one name means one thing across the
commands, a YAML key is its flag without dashes, renamed spellings still work with a one-line note,
and the README's table is the one the parsers and the audit schema give."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from medrep.audit.config import SCHEMA, Field, validate_config
from medrep.cli import build_parser, main
from medrep.vocabulary import CONCEPTS, PER_COMMAND_CHOICES, did_you_mean, format_prompt, yaml_key

README = Path(__file__).resolve().parents[2] / "README.md"
# The audit section that runs each command's analysis.
SECTION_OF = {"attack": "robustness", "explain": "explain", "features": "features", "overlay": "overlay", "align": "alignment"}
# YAML keys with no command-line counterpart (the audit's own switches and subsets).
# (method_options / estimator_options: on the command line each option has a flag of its own, from the registry)
YAML_ONLY = {"title", "enabled", "models", "stitching", "caption_alignment", "controls", "method_options", "estimator_options"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _live(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


def _hidden(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.help is argparse.SUPPRESS]


def test_every_option_has_help_and_shows_its_default():
    missing, no_default = [], []
    for name, p in _subparsers().items():
        formatter = p._get_formatter()
        for a in _live(p):
            if not (a.help or "").strip():
                missing.append(f"{name} {a.option_strings or a.dest}")
                continue
            flag_like = isinstance(a, (argparse._StoreTrueAction, argparse._StoreFalseAction)) or a.nargs == 0
            if a.option_strings and not a.required and not flag_like and "default" not in formatter._get_help_string(a):
                no_default.append(f"{name} {a.option_strings[0]}")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help does not show the default: {no_default}"


def test_one_name_one_meaning_across_commands():
    seen: dict[str, tuple[str, tuple]] = {}
    clashes = []
    live_flags = {f for p in _subparsers().values() for a in _live(p) for f in a.option_strings}
    for name, p in _subparsers().items():
        for a in _live(p):
            for flag in a.option_strings:
                own_choices = flag in PER_COMMAND_CHOICES  # one concept, each command lists its own choices
                shape = (a.dest, a.type, tuple(a.choices) if a.choices and not own_choices else None,
                         isinstance(a, (argparse._StoreTrueAction, argparse._StoreFalseAction)))
                if flag in seen and seen[flag][1] != shape:
                    clashes.append(f"{flag}: {seen[flag][0]} {seen[flag][1]} vs {name} {shape}")
                seen.setdefault(flag, (name, shape))
        for a in _hidden(p):  # the only hidden options are old spellings, and no command uses one for something new
            assert getattr(a, "new", None) or a.option_strings == [], f"{name} {a.option_strings}: hidden but not a deprecated alias"
            for old in a.option_strings:
                assert old not in live_flags, f"{old} is an old spelling in {name} but a live option elsewhere"
            new = a.new.split()[0]
            assert any(new in b.option_strings for b in _live(p)), f"{name}: {a.option_strings} points at missing {new}"
    assert not clashes, "one flag, two meanings: " + "; ".join(clashes)
    # the flags decided once for all commands
    for flag in ("--attack-steps", "--deletion-steps", "--attack-target", "--explain-target", "--target-model", "--text",
                 "--words", "--word-class", "--prompt"):
        assert flag in live_flags
    for gone in ("--steps", "--target", "--text-model", "--template", "--eval-split", "--permutations", "--baseline"):
        assert gone not in live_flags


def _yaml_keys(spec: dict, path: str = "") -> list[tuple[str, Field]]:
    out = []
    for key, sub in spec.items():
        full = f"{path}.{key}" if path else key
        out += _yaml_keys(sub, full) if isinstance(sub, dict) else [(full, sub)]
    return out


def _matches(key: str, field: Field, dests: set[str]) -> bool:
    """A YAML key is its flag's name; a key holding a list may be the plural of the flag."""
    return key in dests or (list in field.types and key.endswith("s") and key[:-1] in dests)


def test_every_yaml_key_is_its_flag_without_dashes():
    parsers = _subparsers()
    every = {yaml_key(f) for p in parsers.values() for a in _live(p) for f in a.option_strings}
    wrong = []
    for full, field in _yaml_keys(SCHEMA):
        key = full.rsplit(".", 1)[-1]
        if key in YAML_ONLY:
            continue
        parts = full.split(".")
        if parts[0] == "analyses":
            command = next((c for c, s in SECTION_OF.items() if s == parts[1]), None)
            # a section no single command runs (subgroups: features' options) takes any command's flags
            names = {yaml_key(f) for a in _live(parsers[command]) for f in a.option_strings} if command else every
        else:
            names = every
        if not _matches(key, field, names):
            wrong.append(full)
    assert not wrong, f"YAML keys that are no command's flag without dashes: {wrong}"


def test_the_concept_table_names_live_flags_and_real_keys():
    live = {f for p in _subparsers().values() for a in _live(p) for f in a.option_strings}
    keys = {k for k, _ in _yaml_keys(SCHEMA)}
    for concept, flag, key in CONCEPTS:
        assert flag in live, f"{concept}: {flag} is no command's option"
        if key is None:
            continue
        assert key in keys or key.replace("*", "robustness") in keys, f"{concept}: no YAML key {key}"
        last = key.rsplit(".", 1)[-1]
        assert last in (yaml_key(flag), yaml_key(flag) + "s"), f"{concept}: {key} is not {flag} without dashes"
    flags = [f for _, f, _ in CONCEPTS]
    assert len(flags) == len(set(flags)), "a flag listed for two concepts"


@pytest.mark.parametrize("command, old, value, dest, expected", [
    ("attack", "--steps", "7", "attack_steps", 7),
    ("attack", "--target", "centroid", "attack_target", "centroid"),
    ("explain", "--steps", "5", "deletion_steps", 5),
    ("explain", "--target", "embedding", "explain_target", "embedding"),
    ("explain", "--baseline", "zero", "deletion_baseline", "zero"),
    ("features", "--text-model", "minilm", "text", "minilm"),
    ("features", "--permutations", "9", "n_permutations", 9),
    ("overlay", "--text-model", "minilm", "text", "minilm"),
    ("overlay", "--target", "R=malignant", "word_class", ["R=malignant"]),
    ("align", "--target", "demo-cnn", "target_model", "demo-cnn"),
    ("align", "--template", "a {c}", "prompt", ["a {c}"]),
    ("align", "--prompts", "p.json", "prompt_file", "p.json"),
    ("align", "--eval-split", "val", "test_split", "val"),
])
def test_old_spellings_still_work_with_one_line_naming_the_new_one(command, old, value, dest, expected, capsys):
    from medrep import vocabulary

    vocabulary._noted.clear()
    required = {"align": ["--source", "demo-vit"]}.get(command, ["--model", "demo-vit"])
    args = build_parser().parse_args([command, *required, old, value, "--out", "o"])
    assert getattr(args, dest) == expected
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    new = "--" + dest.replace("_", "-")
    assert len(err) == 1 and old in err[0] and new in err[0] and "deprecated" in err[0], err


def test_features_overlay_switch_and_its_old_spelling(capsys):
    from medrep import vocabulary

    vocabulary._noted.clear()
    args = build_parser().parse_args(["features", "--model", "demo-vit", "--overlay", "--out", "o"])
    assert args.overlay is True and args.words is None
    assert capsys.readouterr().err == ""
    args = build_parser().parse_args(["features", "--model", "demo-vit", "--overlay", "R,B", "--out", "o"])
    assert args.overlay is True and args.words == "R,B"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overlay --words" in err[0]


def test_old_yaml_keys_still_work_with_a_note(capsys):
    from medrep import vocabulary

    vocabulary._noted.clear()
    config = validate_config({"analyses": {"robustness": {"steps": 3, "target": "centroid"}, "explain": {"steps": 4},
                                           "overlay": {"size": 0.5}, "alignment": {"zero_shot": False}}})
    a = config["analyses"]
    assert (a["robustness"]["attack_steps"], a["robustness"]["attack_target"]) == (3, "centroid")
    assert a["explain"]["deletion_steps"] == 4 and a["overlay"]["font_size"] == 0.5
    assert a["alignment"]["caption_alignment"] is False
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all("deprecated" in line for line in err)
    assert "analyses.robustness.attack_steps" in err[0]
    with pytest.raises(Exception, match="give attack_steps only"):
        validate_config({"analyses": {"robustness": {"steps": 3, "attack_steps": 4}}})


def test_prompt_placeholder_is_label_and_the_old_ones_still_work(capsys):
    from medrep import vocabulary

    vocabulary._noted.clear()
    assert format_prompt("a scan of {label}", "benign") == "a scan of benign"
    assert capsys.readouterr().err == ""
    assert format_prompt("a scan of {}", "benign") == "a scan of benign"
    assert format_prompt("a {image} of {c}", "benign", image="radiograph") == "a radiograph of benign"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("{label}" in line for line in err)
    with pytest.raises(Exception, match=r"needs \{label\}"):
        format_prompt("a scan", "benign")


def test_suggestions_rank_by_the_whole_name():
    import timm

    hint = did_you_mean("vit_small_patch14_reg4_dinov3", timm.list_models())
    assert hint.startswith(" (did you mean 'vit_small_patch14_reg4_dinov2'")
    assert did_you_mean("demo-vits", ["demo-vit", "demo-cnn", "minilm"]) == " (did you mean 'demo-vit'?)"
    assert did_you_mean("zzzz", ["demo-vit"]) == ""


def test_extract_with_a_mistyped_timm_name_suggests_the_close_one(tmp_path, capsys):
    code = main(["extract", "--model", "timm:vit_small_patch14_reg4_dinov3", "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'vit_small_patch14_reg4_dinov2'" in err and "\n" not in err


def test_an_audit_names_the_bad_model_by_its_yaml_key(tmp_path):
    from medrep.audit.runner import run_audit
    from medrep.errors import MedrepError

    config = {"data": "demo?n_train=12&n_val=0&n_test=12", "models": ["demo-vit", "timm:vit_small_patch14_reg4_dinov3"],
              "text": None}
    with pytest.raises(MedrepError) as err:
        run_audit(config, tmp_path / "audit")
    assert err.value.where == "models[1]" and "--model" not in str(err.value)
    assert "did you mean 'vit_small_patch14_reg4_dinov2'" in str(err.value)


COMMAND_ORDER = ("extract", "attack", "explain", "features", "overlay", "align", "audit", "demo")


def _shown(value, action: argparse.Action | None = None) -> str:
    if action is not None and action.required:
        return "required"
    if value is None or value == [] or isinstance(action, argparse._StoreTrueAction):
        return "none" if action is not None else "null"
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, float) and value < 1 and abs(value * 255 - round(value * 255)) < 1e-9 and round(value * 255):
        return f"{round(value * 255)}/255"
    return str(value)


def _help_default(p: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The default as the option's help states it."""
    if action.required:
        return "required"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "off"
    text = " ".join(p._get_formatter()._get_help_string(action).replace("%%", "%").split())
    found = re.search(r"default:? ([^;)]*(?:\([^)]*\)[^;)]*)*)", text)
    return found.group(1).strip() if found else _shown(action.default, action)


def readme_table() -> str:
    """The README's vocabulary table, from the concept list, the parsers (first command in COMMAND_ORDER that
    has the flag) and the audit schema (its default in brackets when it differs)."""
    parsers = _subparsers()
    fields = dict(_yaml_keys(SCHEMA))
    rows = ["| concept | CLI flag | YAML key | default |", "|---|---|---|---|"]
    for concept, flag, key in CONCEPTS:
        order = ("overlay", *COMMAND_ORDER) if flag == "--prompt" else COMMAND_ORDER  # the prompt with a default
        command = next(c for c in order if any(flag in a.option_strings for a in _live(parsers[c])))
        action = next(a for a in _live(parsers[command]) if flag in a.option_strings)
        default = f"{_help_default(parsers[command], action)} ({command})"
        if key is not None:
            in_yaml = _shown(fields[key.replace("*", "robustness")].default_value())
            default += f"; audit: {in_yaml}" if key != "analyses.*.limit" else "; audit: per analysis"
        rows.append(f"| {concept} | `{flag}` | {f'`{key}`' if key else '—'} | {default} |")
    return "\n".join(rows)


def test_the_readme_has_the_one_vocabulary_table():
    text = README.read_text(encoding="utf-8")
    assert readme_table() in text, "regenerate the README's table: python -c 'from tests.core.test_vocabulary import readme_table; print(readme_table())'"


def test_the_readme_uses_no_old_spelling():
    text = README.read_text(encoding="utf-8")
    commands = re.findall(r"^medrep [a-z]+ .*$", text, flags=re.M)
    for line in commands:
        for old in ("--steps ", "--target ", "--text-model", "--template", "--eval-split", "--permutations", "--baseline ",
                    "--overlay "):
            assert old not in line + " " or (old == "--overlay " and "--overlay --" in line + " "), line
    for line in text.splitlines():
        if "--prompt " in line or "--prompt=" in line:
            assert "{label}" in line and "{c}" not in line and "{}" not in line, line


def _examples() -> list[tuple[str, str]]:
    """(command, example) for every example printed at the end of every command's --help."""
    out = []
    for name, p in _subparsers().items():
        text = p.format_help()
        assert "examples (on the embedded default):" in text, f"{name} --help shows no example"
        tail = text.split("examples (on the embedded default):", 1)[1]
        lines = [line.strip() for line in tail.strip().splitlines()]
        assert lines and all(re.search(rf"\bmedrep {name}\b", line) for line in lines), (name, lines)
        out += [(name, line) for line in lines]
    return out


def test_every_help_ends_with_examples():
    found = dict.fromkeys(name for name, _ in _examples())
    assert set(found) == set(_subparsers())


@pytest.mark.parametrize("command, example", [
    pytest.param(c, e, marks=[pytest.mark.slow] if c in ("demo", "audit") else []) for c, e in _examples()])
def test_every_help_example_runs(command, example, tmp_path, monkeypatch):
    import io
    import shlex

    monkeypatch.chdir(tmp_path)  # the examples write under out/
    if " | medrep " in example:  # echo 'YAML' | medrep audit -
        feed, example = example.split(" | ", 1)
        monkeypatch.setattr("sys.stdin", io.StringIO(shlex.split(feed)[1]))
    argv = shlex.split(example)
    assert argv[0] == "medrep"
    assert main(argv[1:]) == 0, example
    if "--out" not in argv:  # a listing (medrep datasets) writes nothing
        return
    out = Path(argv[argv.index("--out") + 1])
    assert (tmp_path / out / "manifest.json").exists()
