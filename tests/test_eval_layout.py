"""The shape of advx.evaluate: its modules import one another, never the package back,
and ``advx.evaluate.runner`` keeps the names callers imported from it before the split."""

from __future__ import annotations

import ast
from pathlib import Path

import advx.evaluate

PACKAGE = Path(advx.evaluate.__file__).parent


def _imported(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, inside functions too; for
    ``from P import name`` the module is ``P``."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = ".".join(["advx", "evaluate"][: 3 - node.level])
                out.append((node.lineno, f"{base}.{node.module}" if node.module else base))
            else:
                out.append((node.lineno, node.module or ""))
    return out


def test_no_evaluate_module_imports_the_package_itself():
    # `from advx.evaluate import x` in a submodule closes a loop through __init__.py
    # (which imports the runner, which imports the submodules); import the module by
    # its full name instead (`from advx.evaluate.x import ...`).
    offenders = [
        f"{p.name}:{line} imports {mod}"
        for p in sorted(PACKAGE.glob("*.py"))
        if p.name != "__init__.py"
        for line, mod in _imported(p)
        if mod == "advx.evaluate"
    ]
    assert offenders == []


def test_the_runner_keeps_its_public_names():
    # callers (and user code) imported these from advx.evaluate.runner before the split;
    # they are the same objects as in the modules that hold them now
    from advx.evaluate import data, progress, provenance, rundir, runner

    assert runner.TensorData is data.TensorData
    assert runner.EvalData is data.EvalData
    assert runner.as_data is data.as_data
    assert runner.Progress is progress.Progress
    assert runner.versions is provenance.versions
    assert runner.command_line is provenance.command_line
    assert runner.example_file is rundir.example_file
    assert callable(runner.dist_info) and callable(runner.evaluate)
    assert set(runner.__all__) <= set(dir(runner))


def test_the_summary_keeps_its_run_json_names():
    from advx.evaluate import rundir, summary

    assert summary.load_run is rundir.load_run
    assert (summary.RUN_JSON, summary.SUMMARY_JSON) == ("run.json", "summary.json")
