"""The house rule: data flows one way; a module never imports from a layer above it (checked on the AST,
including imports inside functions)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gradtrack"

# layer of each top-level part of the package; a module may import only from layers <= its own, and
# parts on the same layer named in SIBLINGS_FORBIDDEN must not import each other.
LAYERS = {
    "errors": 0, "config": 0, "registry": 0, "geometry": 0, "io": 0,
    "models": 1,
    "checkpoint": 2,
    "deploy": 2,  # ONNX export and the onnxruntime backend (models, checkpoint); trackers import it
    "trackers": 3, "data": 3,
    "evaluation": 4, "training": 4,
    "quantize": 4,  # gradtrack quantize: int8 graphs calibrated by running a tracker on data (trackers, data, deploy)
    "bench": 4,  # gradtrack bench: times trackers (uses trackers, io, data)
    "finetune": 4,  # train --data: composes training and evaluation; only training.cli's --data path imports it
    "visualize": 5, "cli": 5, "__main__": 5, "__init__": 5,
    "integrations": 5,  # VOT toolkit TraX client and workspace writer (data readers, build_tracker); cli imports it
}
SIBLINGS_FORBIDDEN = {("trackers", "data"), ("data", "trackers"), ("evaluation", "training"), ("training", "evaluation")}
# The package __init__ (build_tracker) sits on the trackers layer for the lower parts that call it lazily.
ALLOWED = {("evaluation", "__init__"), ("training", "__init__"), ("cli", "__init__")}


def _part(mod: str) -> str:
    parts = mod.split(".")
    assert parts[0] == "gradtrack", mod
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    mod = _module_name(path)
    pkg = mod.rsplit(".", 1)[0]  # the package a relative import starts from (also right for __init__)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "gradtrack"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from .. import x  -> gradtrack.x
                    out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
                    continue
            else:
                target = node.module or ""
            if target.split(".")[0] == "gradtrack":
                out.append((node.lineno, target))
    return out


FILES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_imports(path: Path):
    own = _part(_module_name(path))
    bad = []
    for line, target in _imports(path):
        other = _part(target)
        if other == own or (own, other) in ALLOWED:
            continue
        if other not in LAYERS:
            bad.append(f"line {line}: imports unknown part gradtrack.{other}")
        elif LAYERS[other] > LAYERS[own] or (own, other) in SIBLINGS_FORBIDDEN:
            bad.append(f"line {line}: {own} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[other]})")
    assert not bad, f"{path.relative_to(SRC)}:\n" + "\n".join(bad)


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert parts <= set(LAYERS), f"add these to LAYERS: {sorted(parts - set(LAYERS))}"


def test_data_does_not_import_models():
    """Training samples are built from the score-map geometry (gradtrack.geometry), never from the models."""
    bad = [f"{p.relative_to(SRC)} line {line}: {target}" for p in FILES if _part(_module_name(p)) == "data"
           for line, target in _imports(p) if _part(target) == "models"]
    assert not bad, "\n".join(bad)


def _module_of(target: str, modules: set[str]) -> str | None:
    """The module a (possibly ``package.name``) import target refers to, if it is one of ``modules``."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    """Module -> the gradtrack modules it imports (``top_level_only``: module-level statements only)."""
    modules = {_module_name(p).removesuffix(".__init__"): p for p in FILES}
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        lines = {n.lineno for n in (tree.body if top_level_only else ast.walk(tree))
                 if isinstance(n, (ast.Import, ast.ImportFrom))}
        deps = {_module_of(t, set(modules)) for line, t in _imports(path) if line in lines}
        graph[mod] = {d for d in deps if d and d != mod and not mod.startswith(d + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circles():
    """No cycle among the gradtrack modules, counting every import: top-level ones and function-local ones
    (a lazy import only postpones a circle, it does not remove it).  Not an edge: a module importing a name
    from its own package (``from . import TRACKERS``): Python initialises the package before its submodules."""
    cycle = _cycle(_graph(top_level_only=False))
    assert cycle is None, " -> ".join(cycle)
