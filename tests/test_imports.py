"""Imports flow one way through the package, and no two folders import each other in a circle.

The graph is read from the source with ``ast`` (module-level and function-level imports alike),
so an import hidden inside a function counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "streamwise"

# lower number = lower layer; a file may import its own layer or any lower one
LAYERS = {
    "core": 0, "assets": 0,
    "layers": 1, "attention": 1,
    "convert": 2, "hf": 2, "learn": 2,
    "models": 3,
    "nab": 4,
    "serve": 5, "bench": 5,
}
TOP = 5  # files directly in streamwise/ (cli.py, demo.py) and the package itself


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    files = {}
    for path in root.rglob("*.py"):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             known: dict[str, Path]) -> list[str]:
    """The package modules an import statement reads (a name imported from a package that is
    itself a module counts as that module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        anchor = here[: len(here) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.append(sub if sub in known else base)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file)."""
    known = module_files(root)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module, path.name == "__init__.py", known):
                    while target not in known and "." in target:  # pkg.mod.attr -> pkg.mod
                        target = target.rsplit(".", 1)[0]
                    if target in known and target != module:
                        edges.add(target)
        graph[module] = edges
    return graph


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] not in LAYERS:
        return TOP
    return LAYERS[parts[1]]


def folder(module: str, root: Path = PACKAGE) -> str:
    """The folder holding a module's file, e.g. ``streamwise.learn.anomaly``."""
    path = module_files(root)[module]
    return ".".join((root.name, *path.parent.relative_to(root).parts))


def upward_imports(graph: dict[str, set[str]], root_name: str = "streamwise") -> list[str]:
    """Every import from a lower layer to a higher one.  The package's ``__init__`` is exempt
    as an importer; imported, it sits at the highest layer it imports itself."""
    root_layer = max((layer(d) for d in graph.get(root_name, ())), default=0)

    def level(m: str) -> int:
        return root_layer if m == root_name else layer(m)

    return sorted(f"{src} (layer {level(src)}) imports {dst} (layer {level(dst)})"
                  for src, dsts in graph.items() if src != root_name
                  for dst in dsts if level(dst) > level(src))


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cross_folder_cycles(graph: dict[str, set[str]], root: Path = PACKAGE) -> list[list[str]]:
    """Import circles whose files sit in more than one folder (the package ``__init__``'s own
    imports left out: it re-exports everything and nothing inside may import it)."""
    inner = {m: d for m, d in graph.items() if m != root.name}
    return [sorted(c) for c in strongly_connected(inner)
            if len({folder(m, root) for m in c}) > 1]


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "streamwise"
    (pkg / "core").mkdir(parents=True)
    (pkg / "serve").mkdir()
    for f in ("core/__init__.py", "serve/__init__.py", "serve/app.py"):
        (pkg / f).write_text("")
    (pkg / "__init__.py").write_text("from streamwise.serve import app\n")
    (pkg / "cli.py").write_text("from .serve import app\n")
    (pkg / "core" / "stream.py").write_text(
        "def f():\n    from streamwise.cli import main\n    import streamwise\n")
    graph = import_graph(pkg)
    assert graph["streamwise.cli"] == {"streamwise.serve.app"}
    assert graph["streamwise.core.stream"] == {"streamwise.cli", "streamwise"}
    assert upward_imports(graph) == [
        "streamwise.core.stream (layer 0) imports streamwise (layer 5)",
        "streamwise.core.stream (layer 0) imports streamwise.cli (layer 5)",
    ]
    (pkg / "serve" / "app.py").write_text("import streamwise.core.stream\n")
    assert cross_folder_cycles(import_graph(pkg), pkg) == [
        ["streamwise.cli", "streamwise.core.stream", "streamwise.serve.app"]]


def test_no_import_goes_up_a_layer():
    offenders = upward_imports(import_graph())
    assert not offenders, "imports against core <- layers/attention <- convert/hf/learn <- " \
        "models <- nab <- serve/bench/cli:\n" + "\n".join(offenders)


def test_no_import_circle_between_folders():
    cycles = cross_folder_cycles(import_graph())
    assert not cycles, "import circles across folders:\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_learners_outside_rl_do_not_need_gymnasium():
    """The anomaly detectors, forecasters and NAB run without the ``rl`` extra: importing them
    does not import gymnasium (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import sys, streamwise.learn.anomaly, streamwise.learn.forecast, streamwise.nab; "
            "print('gymnasium' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
