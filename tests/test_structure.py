"""The package's shape: every module imports on its own, and no module imports one that
imports it back (directly or around a longer loop), except the cycles listed in
:data:`ALLOWED_CYCLES`, which only ever shrinks.

Why both checks: a cycle is harmless until someone imports the modules in another order,
and then one of them sees the other half-initialised; the fresh-interpreter imports catch
that where it already bites, the static check before it does.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "advx"

ALLOWED_CYCLES: tuple[frozenset[str], ...] = ()
"""Import cycles that are known and being removed; an entry goes when its cycle does
(:func:`test_allowed_cycles_still_exist` says when). Never add one: break the cycle."""

FAILS_ALONE: frozenset[str] = frozenset()
"""Modules of an allowed cycle that cannot be imported first today (they see the other
half of the cycle half-initialised). Goes with that cycle; never add one."""


# ------------------------------------------------------------------------- the graph
def module_files(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``src``."""
    out: dict[str, Path] = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:`` (never true at run time)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: top level, in functions and classes (lazy
    imports run too, just later), but not under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(
    name: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: set[str]
) -> set[str]:
    """The package's modules that ``node``, in module ``name``, imports.

    ``import a.b.c`` and ``from a.b import c`` (``c`` a module) depend on ``a.b.c``: the
    parents ``a`` and ``a.b`` are imported too, but every module imports its parents, so
    counting them would make each package a cycle with its own modules. ``from a.b
    import f`` (``f`` not a module) depends on ``a.b`` itself.
    """
    out: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in modules:
                out.add(alias.name)
        return out
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = name.split(".") if is_package else name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in modules:
            out.add(sub)
        elif base in modules:
            out.add(base)
    return out


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (see :func:`_targets`)."""
    files = module_files(src)
    names = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        deps: set[str] = set()
        for node in _imports(tree):
            deps |= _targets(name, path.name == "__init__.py", node, names)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm,
    iterative), i.e. every group of modules that import each other around a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[frozenset[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(frozenset(comp))
    return found


def _describe(comp: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = [f"{a} -> {b}" for a in sorted(comp) for b in sorted(graph[a] & comp)]
    return "{" + ", ".join(sorted(comp)) + "}: " + "; ".join(edges)


# ------------------------------------------------------------------ the checker itself
def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / ROOT / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def test_checker_sees_lazy_and_relative_imports_and_skips_type_checking(tmp_path: Path) -> None:
    src = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "def f():\n    from advx import b\n",  # lazy, submodule by name
            "b.py": "from .c import g\n",  # relative
            "c.py": "import advx.a\ng = 1\n",
            "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import advx.e\n",
            "e.py": "import advx.d\n",
            "pkg/__init__.py": "from advx.pkg.x import h\n",
            "pkg/x.py": "import advx.c\nh = 1\n",  # a submodule's parent is not an edge
        },
    )
    graph = import_graph(src)
    assert graph["advx.a"] == {"advx.b"}
    assert graph["advx.b"] == {"advx.c"}
    assert graph["advx.d"] == set()
    assert graph["advx.pkg"] == {"advx.pkg.x"}
    assert cycles(graph) == [frozenset({"advx.a", "advx.b", "advx.c"})]


def test_checker_finds_a_cycle_through_a_package_init(tmp_path: Path) -> None:
    src = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "pkg/__init__.py": "from advx.pkg.reg import names\n",
            "pkg/reg.py": "def names():\n    from advx.pkg import helper\n    return helper\n",
            "pkg/plugin.py": "from advx.pkg import names\n",
        },
    )
    graph = import_graph(src)
    assert graph["advx.pkg.reg"] == {"advx.pkg"}  # `helper` is a name, not a module
    assert graph["advx.pkg.plugin"] == {"advx.pkg"}
    assert cycles(graph) == [frozenset({"advx.pkg", "advx.pkg.reg"})]


# ------------------------------------------------------------------------ the package
def test_no_new_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "advx.attacks.base" in graph  # the real tree was read
    new = [c for c in cycles(graph) if not any(c <= allowed for allowed in ALLOWED_CYCLES)]
    assert not new, "import cycles (break them; do not allow-list them):\n" + "\n".join(
        _describe(c, graph) for c in new
    )


def test_allowed_cycles_still_exist() -> None:
    """The allow-list only shrinks: an entry whose cycle is gone must be removed."""
    found = cycles(import_graph())
    stale = [sorted(a) for a in ALLOWED_CYCLES if not any(len(c & a) > 1 for c in found)]
    assert not stale, f"these cycles are gone; remove them from ALLOWED_CYCLES: {stale}"


# One interpreter imports the third-party libraries advx uses, then forks one child per
# advx module, which imports that module alone: the same as a fresh `python -c "import
# advx.x"` for advx's own import order, without paying torch's import 150 times.
_FORKING_IMPORTER = r"""
import importlib, json, os, subprocess, sys, traceback

names = sys.argv[1:]
probe = subprocess.run(
    [sys.executable, "-c",
     "import importlib, sys\n"
     "for n in sys.argv[1:]:\n"
     "    try:\n"
     "        importlib.import_module(n)\n"
     "    except Exception:\n"
     "        pass\n"
     "print(' '.join(m for m in list(sys.modules) if m.split('.')[0] != 'advx'))",
     *names],
    capture_output=True, text=True, check=True,
)
for lib in probe.stdout.split():  # every third-party (sub)module advx ends up using
    if lib not in sys.modules and lib != "__main__":
        try:
            importlib.import_module(lib)
        except Exception:
            pass
assert not any(m == "advx" or m.startswith("advx.") for m in sys.modules)

failed = {}
running = {}  # pid -> (module, read end of its pipe); a traceback fits a pipe's buffer
todo = list(names)
while todo or running:
    while todo and len(running) < max(2, os.cpu_count() or 2):
        name = todo.pop()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                importlib.import_module(name)
            except BaseException:
                os.write(w, traceback.format_exc()[-60000:].encode())
                code = 1
            os.close(w)
            os._exit(code)
        os.close(w)
        running[pid] = (name, r)
    pid, status = os.wait()
    name, r = running.pop(pid)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode()
    if status != 0:
        failed[name] = f"--- import {name} (status {status})\n{err}"
sys.stdout.write(json.dumps(failed))
"""


def _importable_modules() -> list[str]:
    # __main__ modules run a command when imported; they are entry points, not modules
    return [n for n in module_files() if n.rsplit(".", 1)[-1] != "__main__"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (Linux, macOS)")
def test_every_module_imports_alone() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    names = _importable_modules()
    assert len(names) > 50
    proc = subprocess.run(
        [sys.executable, "-c", _FORKING_IMPORTER, *names],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    failed: dict[str, str] = json.loads(proc.stdout)
    new = {k: v for k, v in failed.items() if k not in FAILS_ALONE}
    assert not new, "modules that fail to import alone:\n" + "\n".join(new.values())
    fixed = sorted(FAILS_ALONE - set(failed))
    assert not fixed, f"these import alone now; remove them from FAILS_ALONE: {fixed}"
