"""`medrep datasets`: the recipe table the README shows, and a listing piped into a reader that is gone."""
from __future__ import annotations


def test_readme_recipe_table_is_the_registry():
    from pathlib import Path

    from medrep.commands.datasets import recipe_table_markdown
    from medrep.data.recipes import RECIPE_MODULES, load_recipes

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert recipe_table_markdown() in readme
    assert len(load_recipes()) == len(RECIPE_MODULES) == 11


def test_datasets_into_a_closed_pipe_stops_quietly():
    """`medrep datasets | head`: the reader is gone before the listing is written; no traceback, SIGPIPE's status."""
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "medrep.cli", "datasets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.close()  # before the interpreter has even imported medrep
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and err == ""
