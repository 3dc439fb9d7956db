"""The layers of docs/architecture.md: each imports only from the layers below it, no import
cycle of any kind (type-only and in-function imports included), and the demo's call path
only ever goes down them."""

import ast
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import backfill_lib
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment

PACKAGE = Path(backfill_lib.__file__).parent
# Bottom to top: a module may import from its own layer and the layers before it.
LAYERS = (
    "storage",
    "core",
    "data",
    "models",
    "methods",
    "training",
    "serving",
    "reporting",
    "pipeline",
    "explorer",
    "cli",
)
SURFACE = {"backfill_lib", "backfill_lib.__main__"}  # the public API and the entry point


def module_name(path: Path) -> str:
    parts = ("backfill_lib", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative).is_dir()


def imports(path: Path) -> set[str]:
    """Every backfill_lib module that ``path`` imports, wherever the import statement is."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("backfill_lib")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("backfill_lib"):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if is_module(submodule) else base)
    return found


GRAPH = {module_name(path): imports(path) for path in PACKAGE.rglob("*.py")}


def test_every_module_belongs_to_a_layer():
    assert {m.split(".")[1] for m in GRAPH if m not in SURFACE} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(set(GRAPH) - SURFACE))
def test_a_module_imports_only_from_its_layer_and_below(module):
    above = {m for m in GRAPH[module] if m in SURFACE or layer(m) > layer(module)}
    assert not above, f"{module} ({LAYERS[layer(module)]}) imports from above: {sorted(above)}"


def test_there_is_no_import_cycle():
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in done:
            return
        for imported in sorted(GRAPH.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, ())


def test_the_contract_sees_a_violation(tmp_path, monkeypatch):
    """The checks above can fail: a core module that imports the pipeline is caught."""
    bad = {**GRAPH, "backfill_lib.core.merge": {"backfill_lib.pipeline.experiment"}}
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", bad)
    with pytest.raises(AssertionError, match="imports from above"):
        test_a_module_imports_only_from_its_layer_and_below("backfill_lib.core.merge")
    with pytest.raises(AssertionError, match="import cycle"):
        test_there_is_no_import_cycle()


def traced_calls(run) -> list[tuple[str, str, str]]:
    """``(caller module, callee module, callee function)`` of every call into backfill_lib
    while ``run()`` runs, the caller being the nearest backfill_lib frame up the stack
    (torch's ``Module.__call__`` and the like between them are skipped)."""
    calls = []

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        if not callee.startswith("backfill_lib.") or callee in SURFACE:
            return
        caller = frame.f_back
        while caller is not None and not caller.f_globals.get("__name__", "").startswith(
            "backfill_lib."
        ):
            caller = caller.f_back
        if caller is not None:
            calls.append((caller.f_globals["__name__"], callee, frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.slow
def test_the_demo_runs_the_stages_in_order_and_only_calls_down_the_layers(tmp_path):
    """``Experiment.run`` (what ``backfill demo`` runs) on a small digits experiment with every
    method: the stages come in METHOD.md's order, and no call climbs back up a layer."""
    config = default_config("digits", orders=("random",), steps=2, limit_images=96)
    config = replace(config, old=replace(config.old, epochs=1), new=replace(config.new, epochs=1))
    experiment = Experiment(config, cache_dir=tmp_path)
    calls = traced_calls(experiment.run)
    climbs = [(a, b, f) for a, b, f in calls if layer(b) > layer(a)]
    assert not climbs, f"{len(climbs)} calls up the layers, e.g. {climbs[:3]}"
    stages = [f for a, b, f in calls if a == b == "backfill_lib.pipeline.experiment"]
    order = ["plan", "train_models", "embed", "fit_transformations", "evaluate_curves", "report"]
    assert [f for f in stages if f in order] == order
    assert {LAYERS[layer(b)] for _, b, _ in calls} >= {
        "storage", "core", "data", "models", "methods", "training", "pipeline"
    }  # fmt: skip
