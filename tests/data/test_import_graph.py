"""medrep.data has no import cycle, counting imports inside functions too; the DICOM decoder is a leaf."""
from __future__ import annotations

import ast
from pathlib import Path

import medrep.data

DATA = Path(medrep.data.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(DATA.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in DATA.rglob("*.py")}
    known = set(files)
    # a package's __init__ is not an edge target of its own modules' imports of siblings
    return {m: _imports(p, known) - {m, "medrep.data"} for m, p in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_data_package_has_no_import_cycle():
    graph = import_graph()
    assert "medrep.data.dicom_pixels" in graph and "medrep.data.images" in graph
    assert _cycle(graph) is None, " → ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_dicom_decoder_is_a_leaf():
    assert import_graph()["medrep.data.dicom_pixels"] <= {"medrep.data.paths"}
    assert import_graph()["medrep.data.paths"] == set()
