"""The house is one-way: the import graph of src/clearset, built from the AST with the imports made inside
functions counted too, has no cycle, and no module imports a module of a higher floor. The floor table is
the one in docs/architecture.md; a module takes the floor of its longest matching prefix.

Stages (floor 4) should read each other's artifacts, not import each other's packages: the imports
between stages that remain are listed in STAGE_IMPORTS_TO_REMOVE, exactly (a new one fails the test, and
so does one that is gone but still listed), so the list can only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "clearset"

FLOORS = {
    # floor 0: no clearset imports but each other
    "clearset": 0, "clearset.errors": 0, "clearset.progress": 0, "clearset.registry": 0, "clearset.io": 0,
    "clearset.device": 0, "clearset.views": 0,
    # floor 1: pure numerics and where work runs
    "clearset.vectors": 1, "clearset.ops": 1, "clearset.engines": 1,
    # floor 2: data and networks
    "clearset.data": 2, "clearset.models": 2,
    # floor 3: the workspace, the file formats stages exchange, partitioned search
    "clearset.workspace": 3, "clearset.artifacts": 3, "clearset.scale": 3,
    # floor 4: stages
    "clearset.data.ingest": 4, "clearset.features": 4, "clearset.audit": 4, "clearset.curate": 4,
    "clearset.distill": 4, "clearset.train": 4, "clearset.evaluate": 4, "clearset.review": 4,
    "clearset.pretrain": 4, "clearset.security": 4, "clearset.explain": 4,
    # floor 5: what runs stages together or shows their results
    "clearset.leaderboard": 5, "clearset.reporting": 5, "clearset.oof": 5, "clearset.scores": 5,
    # floor 6: entry points
    "clearset.pipeline": 6, "clearset.cli": 6, "clearset.testing": 6,
}
STAGES = ["clearset.data.ingest", "clearset.features", "clearset.audit", "clearset.curate", "clearset.distill",
          "clearset.train", "clearset.evaluate", "clearset.review", "clearset.pretrain",
          "clearset.security", "clearset.explain"]

# (importing stage, imported stage): the cross-stage imports still to be replaced by artifact readers.
STAGE_IMPORTS_TO_REMOVE: set[tuple[str, str]] = set()  # none left: clearset.oof (floor 5) runs train and audit


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the clearset modules it imports (at module level or inside functions)."""
    files = {module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + [node.module] if node.module else base) if node.level else (node.module or "")
                names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    graph[mod].add(name)
    return graph


def floor(module: str) -> int:
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return FLOORS[best]


def stage(module: str) -> str | None:
    found = [s for s in STAGES if module == s or module.startswith(s + ".")]
    return max(found, key=len) if found else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def test_every_module_has_a_floor():
    graph = import_graph()
    for module in graph:
        floor(module)  # raises ValueError (max of nothing) for a module outside the table


def test_no_import_cycles_counting_imports_inside_functions():
    assert cycles(import_graph()) == []


def test_no_module_imports_a_higher_floor():
    graph = import_graph()
    upward = sorted(f"{a} ({floor(a)}) -> {b} ({floor(b)})" for a, targets in graph.items() for b in targets
                    if floor(b) > floor(a))
    assert upward == []


def test_stages_import_only_the_stage_imports_still_listed():
    graph = import_graph()
    found = {(stage(a), stage(b)) for a, targets in graph.items() for b in targets
             if stage(a) and stage(b) and stage(a) != stage(b) and not stage(b).startswith(stage(a) + ".")}
    assert found == STAGE_IMPORTS_TO_REMOVE


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The checks above can fail: a two-module cycle and an upward edge are found."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert floor("clearset.reporting.html") > floor("clearset.workspace")


def test_the_cli_starts_without_the_heavy_libraries():
    """`clearset --help` and the defaults the CLI shows load no numpy stack: names load on first use."""
    import subprocess
    import sys

    code = ("import sys, clearset.cli; heavy = [m for m in ('torch', 'pandas', 'pyarrow', 'numpy') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_a_new_file_in_a_registry_package_registers_itself(tmp_path, monkeypatch):
    """import_submodules imports every module of a package, so a new entry is one file and a decorator."""
    import sys

    from clearset.registry import Registry, import_submodules

    pkg = tmp_path / "plugins_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "alpha.py").write_text("from clearset_demo_reg import REG\nREG.register('alpha')(1)\n")
    (pkg / "beta.py").write_text("from clearset_demo_reg import REG\nREG.register('beta')(2)\n")
    (pkg / "_private.py").write_text("raise RuntimeError('not imported')\n")
    reg_module = type(sys)("clearset_demo_reg")
    reg_module.REG = Registry("demo entry", listing="demo-entries-for-test")
    monkeypatch.setitem(sys.modules, "clearset_demo_reg", reg_module)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.import_module("plugins_demo")
    import_submodules("plugins_demo")
    assert reg_module.REG.list() == ["alpha", "beta"]
    from clearset import registry

    registry.REGISTRIES.pop("demo-entries-for-test")


def test_every_file_of_a_registry_package_is_loaded():
    """The packages that hold one entry per file import all their files (no list to keep up to date)."""
    import importlib
    import pkgutil
    import sys

    for package in ("clearset.audit", "clearset.curate", "clearset.distill", "clearset.data.sources",
                    "clearset.evaluate.metrics", "clearset.evaluate.measures"):
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            assert f"{package}.{info.name}" in sys.modules, f"{package}.{info.name} was not imported"
