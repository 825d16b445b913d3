"""The package's import graph: no cycles, and arrows only point down the layers of docs/architecture.md (imports inside
functions included); no dataset or sampler name written into the harness, the CLI or the trainer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from genlab import registry

SRC = Path(__file__).resolve().parents[2] / "src" / "genlab"

# Top to bottom; a module may import its own layer and any layer below. Keep in step with docs/architecture.md.
LAYERS = [
    ("cli", "__main__", "__init__"),
    ("api",),
    ("apps", "evaluation", "report", "studio"),
    ("train",),
    ("metrics", "modalities"),
    ("models",),
    ("samplers",),
    ("nn",),
    ("data",),
    ("spec", "config", "registry", "errors", "checkpoint", "noise"),
]
# Arrows up that the architecture accepts, each explained in docs/architecture.md: none today.
ALLOWED_UP: set[tuple[str, str]] = set()


def module_names() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] or ["__init__"]
        out[".".join(parts)] = f
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the genlab modules it imports anywhere in its file (a package's own __init__ is no arrow)."""
    mods = module_names()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        package = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                    names = [f"genlab.{mod}.{a.name}" if mod else f"genlab.{a.name}" for a in node.names] + [f"genlab.{mod}"]
                elif node.module:
                    names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            for name in names:
                if name.startswith("genlab."):
                    target = resolve(name[len("genlab.") :])
                    if target and target != m and target != "__init__" and not m.startswith(target + "."):
                        graph[m].add(target)
    return graph


def layer(module: str) -> int:
    head = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if head in names:
            return i
    raise AssertionError(f"genlab.{module} belongs to no layer: add its package to LAYERS and docs/architecture.md")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_arrows_point_down():
    up = sorted((a, b) for a, targets in import_graph().items() for b in targets if layer(b) < layer(a) and (a, b) not in ALLOWED_UP)
    assert up == [], "imports up the layers: " + ", ".join(f"{a} -> {b}" for a, b in up)


def test_the_checks_catch_a_cycle_and_an_arrow_up():
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert cycles(graph) == [["a", "b"]]
    assert layer("models.vae.vae") > layer("train.trainer") > layer("api")


def string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body and isinstance(n.body[0], ast.Expr)
    }
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}


@pytest.mark.parametrize("path", ["evaluation.py", "cli.py", "train/trainer.py"])
def test_no_dataset_or_sampler_names_in_the_harness(path):
    names = set(registry.list_datasets()) | set(registry.list_samplers())
    assert not names & string_literals(SRC / path)
