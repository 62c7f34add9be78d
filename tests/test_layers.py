"""The package's layers: no import cycles between modules or between sub-packages, and
storage at the bottom.  Read from the source with ast (function-level imports count: they
are dependencies too), so nothing is imported to check it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "darts_paddle"


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}


def _imports(name, path, modules, unresolved=None):
    """The darts_paddle modules `name` imports (a package counts as its __init__); names of
    darts_paddle that are no module go to `unresolved`."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            # `from pkg import sub` imports the module pkg.sub where there is one
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
        if unresolved is not None:
            unresolved.update(t for t in targets
                              if t.split(".")[0] == PACKAGE and t not in modules)
    return found


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph):
    """One cycle of a directed graph as a list of nodes, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def _layer(module):
    """The sub-package (or top-level module) of darts_paddle a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_cycle_finder_finds_a_cycle_and_passes_a_tree():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_the_modules_they_name():
    graph = _graph()
    assert "darts_paddle.storage.atomic" in graph["darts_paddle.storage.checkpoint"]
    assert "darts_paddle.search.methods" in graph["darts_paddle.search.state"]
    assert "darts_paddle.errors" in graph["darts_paddle.storage.resume"]


def test_every_import_of_the_package_names_a_module_of_it():
    modules, unresolved = _modules(), set()
    for name, path in modules.items():
        _imports(name, path, modules, unresolved)
    assert unresolved == set()


def test_no_import_cycle_between_modules():
    assert _cycle(_graph()) is None


def test_no_import_cycle_between_sub_packages():
    layers = {}
    for module, imported in _graph().items():
        layers.setdefault(_layer(module), set()).update(
            _layer(m) for m in imported if _layer(m) != _layer(module))
    assert _cycle(layers) is None


@pytest.mark.parametrize("leaf, allowed", [("storage", {"errors"}), ("errors", set())])
def test_the_bottom_layers_import_nothing_above_them(leaf, allowed):
    above = {_layer(m) for module, imported in _graph().items() if _layer(module) == leaf
             for m in imported} - {leaf}
    assert above <= allowed
