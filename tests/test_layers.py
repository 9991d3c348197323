"""The package graph is acyclic and every import runs downward through the layers.

Layers, bottom first (a module may import its own layer and the layers below):

0. contracts and shared vocabulary: ``jflows.conditioning``, ``jflows.units``,
   ``jflows.collectives``, ``jflows.bijectors.base``, ``jflows.distributions.base``;
1. ``jflows.nets`` (Flax modules, the autoregressive solver, likelihood layouts);
2. ``jflows.bijectors``, ``jflows.distributions``;
3. ``jflows.flows``, ``jflows.ode``, ``jflows.testing``, ``jflows.interop`` (bridges to
   distrax, TFP-JAX, FlowJAX and Flax NNX);
4. ``jflows.train``, and the top-level ``jflows`` package.

``jflows.data`` stands apart: it imports nothing of jflows, and only ``jflows.train``
(which feeds batches to devices) imports it.
A package's ``__init__`` belongs to the package's layer (it re-exports the package), so
``from jflows.bijectors import chain`` inside ``jflows.nets`` is an upward import.
The test reads the sources with :mod:`ast` (every import, also inside functions).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "jflows"

LAYERS = [
    ("jflows.conditioning", "jflows.units", "jflows.collectives", "jflows.bijectors.base",
     "jflows.distributions.base"),
    ("jflows.nets",),
    ("jflows.bijectors", "jflows.distributions"),
    ("jflows.flows", "jflows.ode", "jflows.testing", "jflows.interop"),
    ("jflows.train",),
]
DATA = "jflows.data"
DATA_USERS = ("jflows.train",)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    base = ROOT.parent / relative
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imported_modules(path: Path) -> set[str]:
    """The jflows modules ``path`` imports (``from pkg import sub`` resolves to ``pkg.sub``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jflows"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("jflows"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if is_module(sub) else node.module)
    return found


def layer_of(name: str) -> int | None:
    """The layer of a module: the longest matching prefix wins (``bijectors.base`` is 0)."""
    if name == "jflows":
        return len(LAYERS) - 1
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


GRAPH = {module_name(p): imported_modules(p) for p in sorted(ROOT.rglob("*.py"))}


def test_every_module_has_a_layer():
    unplaced = [m for m in GRAPH if layer_of(m) is None and not m.startswith(DATA)]
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_downward(module):
    if module.startswith(DATA):
        upward = sorted(t for t in GRAPH[module] if not t.startswith(DATA))
        assert not upward, f"{module} (data stands apart) imports {upward}"
        return
    own = layer_of(module)
    upward = sorted(t for t in GRAPH[module]
                    if not t.startswith(DATA) and layer_of(t) is not None and layer_of(t) > own)
    assert not upward, (f"{module} (layer {own}) imports upward: "
                        + ", ".join(f"{t} (layer {layer_of(t)})" for t in upward))
    if not module.startswith(DATA_USERS):
        data = sorted(t for t in GRAPH[module] if t.startswith(DATA))
        assert not data, f"{module} imports {data}; only {DATA_USERS} may use jflows.data"


def test_no_import_cycles():
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if target == node or target not in GRAPH:
                continue
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The layer rule itself: a nets module importing a bijector is flagged."""
    assert layer_of("jflows.nets.made") == 1
    assert layer_of("jflows.bijectors.autoregressive") == 2
    assert layer_of("jflows.bijectors.base") == 0
    fake = tmp_path / "fake.py"
    fake.write_text("from jflows.bijectors import chain\nfrom jflows.nets import made\n")
    assert imported_modules(fake) == {"jflows.bijectors", "jflows.nets.made"}
