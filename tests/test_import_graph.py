"""The project's import graph: no module imports one that imports it back (at any depth, lazy imports
inside functions included), and the library `semfed/` never imports Flower."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("semfed", "clients", "server", "strategies", "experiments")


def module_name(file: Path) -> str:
    parts = file.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(file: Path) -> set[str]:
    """Absolute names of every module `file` imports, anywhere in it (relative imports resolved)."""
    package = module_name(file) if file.name == "__init__.py" else module_name(file).rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def project_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    files = [f for p in PACKAGES for f in (ROOT / p).rglob("*.py")]
    modules = {module_name(f): f for f in files}
    return {name: {n for n in imported_names(file) if n in modules and n != name} for name, file in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_hand_made_cycle_and_nothing_in_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_imports_resolve_to_absolute_module_names(tmp_path, monkeypatch):
    package = tmp_path / "semfed" / "encoders"
    package.mkdir(parents=True)
    (package / "cache.py").write_text("from .regions import RegionEncoder\nfrom ..config import load_config\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {"semfed.encoders.regions", "semfed.config"} <= imported_names(package / "cache.py")


def test_no_module_imports_one_that_imports_it_back():
    graph = project_graph()
    assert "server.app" in graph and "semfed.config" in graph  # the walk found the project
    assert cycles(graph) == []


@pytest.mark.parametrize("file", sorted((ROOT / "semfed").rglob("*.py")), ids=lambda f: str(f.relative_to(ROOT)))
def test_the_library_never_imports_flower(file):
    assert not {n for n in imported_names(file) if n == "flwr" or n.startswith("flwr.")}
