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
    "trackers": 3, "data": 3,
    "evaluation": 4, "training": 4,
    "visualize": 5, "cli": 5, "__main__": 5, "__init__": 5,
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
