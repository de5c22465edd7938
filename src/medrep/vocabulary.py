"""One name per concept: deprecated spellings, the prompt placeholder, and the concept table.

Every command-line option and audit-YAML key names one concept; a YAML key is its flag without the
leading dashes, hyphens → underscores (a key holding a list may be the plural of its flag).  Spellings
that were renamed keep working for one release and print one line naming the new one.
"""
from __future__ import annotations

import re
import sys

from medrep.errors import MedrepError, Param

# The placeholder a prompt template uses for the class name, in every command and the audit.
LABEL_PLACEHOLDER = "{label}"

#: Options that name one concept in every command but whose choices each command lists for itself:
#: ``--protocol`` is a named, fixed evaluation protocol for the command's figures (attack: ``standard``;
#: explain: ``chexlocalize``, ``chung2025``).
PER_COMMAND_CHOICES = {"--protocol": "a named, fixed evaluation protocol for the command's figures"}
_OLD_PLACEHOLDERS = ("{}", "{c}")

_noted: set[tuple[str, str]] = set()


def deprecated(old: str, new: str) -> None:
    """One line on stderr (once per process and spelling): ``old`` still works, ``new`` is its name now."""
    if (old, new) in _noted:
        return
    _noted.add((old, new))
    print(f"medrep: note: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)


def format_prompt(template: str, label: str, where: str = Param("prompt"), require_label: bool = True, **fields: str) -> str:
    """``template`` with ``{label}`` replaced by the class name (and any named ``fields``, e.g. ``image``).

    The old placeholders ``{}`` and ``{c}`` still work for one release, with a note.  ``require_label=False``
    for a prompt already written for one class."""
    template = upgrade_template(template, where)
    if require_label and LABEL_PLACEHOLDER not in template:
        raise MedrepError(f"the prompt template {template!r} needs {LABEL_PLACEHOLDER} where the class name goes", where=where)
    try:
        return template.format(label=label, **fields)
    except (KeyError, IndexError, ValueError) as err:
        raise MedrepError(f"the prompt template {template!r} has a placeholder other than {LABEL_PLACEHOLDER}"
                          + (" and {" + "}, {".join(fields) + "}" if fields else "") + f" ({err})", where=where) from None


def upgrade_template(template: str, where: str = Param("prompt")) -> str:
    """A template written with ``{}`` or ``{c}`` rewritten to ``{label}`` (noting the old spelling once)."""
    for old in _OLD_PLACEHOLDERS:
        if old in template:
            deprecated(f"the placeholder {old} (in {where})", LABEL_PLACEHOLDER)
            template = template.replace(old, LABEL_PLACEHOLDER)
    return template


def did_you_mean(name: str, candidates, n: int = 3) -> str:
    """' (did you mean X?)' / ' (did you mean X, Y or Z?)' with the candidates closest to the whole ``name``
    (difflib's ratio), or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=n, cutoff=0.6)
    if not close:
        return ""
    names = [repr(c) for c in close]
    return f" (did you mean {names[0] if len(names) == 1 else ', '.join(names[:-1]) + ' or ' + names[-1]}?)"


def yaml_key(flag: str) -> str:
    """The audit-YAML key of a command-line flag: ``--attack-steps`` → ``attack_steps``."""
    return re.sub(r"^-+", "", flag).replace("-", "_")


# Concept → flag (the README's table is generated from this list, the parsers and the audit schema).
# ``yaml`` is the key's path in the audit YAML (None: the option has no YAML counterpart).
CONCEPTS: list[tuple[str, str, str | None]] = [
    ("data spec", "--data", "data"),
    ("image encoder spec(s)", "--model", "models"),
    ("text encoder spec", "--text", "text"),
    ("split the probes / anchors are fitted on", "--train-split", "train_split"),
    ("split the results are measured on", "--test-split", "test_split"),
    ("at most N items (seeded choice)", "--limit", "analyses.*.limit"),
    ("random seed", "--seed", "seed"),
    ("images per batch", "--batch-size", "batch_size"),
    ("item attributes every figure is broken down by", "--by", "by"),
    ("smallest subgroup judged (smaller: flagged)", "--min-group-size", "min_group_size"),
    ("age-band edges for numeric ages", "--age-bins", "age_bins"),
    ("bootstrap resamples behind a 95% interval", "--n-boot", "n_boot"),
    ("attack objective", "--objective", "analyses.robustness.objectives"),
    ("perturbation budget(s) ε", "--eps", "analyses.robustness.eps"),
    ("perturbation norm", "--norm", "analyses.robustness.norm"),
    ("attack iterations", "--attack-steps", "analyses.robustness.attack_steps"),
    ("attack step size", "--step-size", "analyses.robustness.step_size"),
    ("what a collide attack pulls toward", "--attack-target", "analyses.robustness.attack_target"),
    ("noise σ of the attack detector", "--noise-sigma", "analyses.robustness.noise_sigma"),
    ("noisy copies per image (detector)", "--noise-draws", "analyses.robustness.noise_draws"),
    ("explanation methods", "--methods", "analyses.explain.methods"),
    ("explanation scores", "--metrics", "analyses.explain.metrics"),
    ("the score an explanation explains", "--explain-target", "analyses.explain.explain_target"),
    ("deletion / insertion steps", "--deletion-steps", "analyses.explain.deletion_steps"),
    ("what deleted pixels become", "--deletion-baseline", None),
    ("prompt template ({label} = class name)", "--prompt", None),
    ("kNN neighbours", "--k", "analyses.features.k"),
    ("few-shot sizes per class", "--shots", "analyses.features.shots"),
    ("2-D projections", "--projection", "analyses.features.projections"),
    ("permutations of a similarity null", "--n-permutations", "analyses.features.n_permutations"),
    ("words written on the images", "--words", "analyses.overlay.words"),
    ("class a written word stands for", "--word-class", None),
    ("overlay font size", "--font-size", "analyses.overlay.font_size"),
    ("overlay position", "--position", "analyses.overlay.position"),
    ("overlay opacity", "--opacity", "analyses.overlay.opacity"),
    ("alignment anchor count(s)", "--anchors", "analyses.alignment.anchors"),
    ("alignment estimator", "--estimator", "analyses.alignment.estimator"),
    ("how anchors are chosen", "--anchor-selection", "analyses.alignment.anchor_selection"),
    ("image encoder to stitch into (align)", "--target-model", None),
    ("module to embed at / its pooling", "--layer", None),
    ("output directory", "--out", None),
    ("continue an interrupted run", "--resume", None),
]
