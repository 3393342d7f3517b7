"""The README's Python examples are executed, so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert _python_blocks(), "README lost its Python example"


def test_readme_python_examples_run(capsys):
    for block in _python_blocks():
        code = compile(block, str(README), "exec")
        namespace: dict[str, object] = {"__name__": "__readme__"}
        exec(code, namespace)  # noqa: S102 - the README is ours; running it is the point


def test_readme_commands_exist():
    """Every `advx <command>` the README shows is a real command."""
    from typer.main import get_command

    from advx.cli import app

    group = get_command(app)
    commands = set(group.commands)  # type: ignore[attr-defined]
    bash = "\n".join(re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S))
    shown = set(re.findall(r"^advx (\w+)", bash, flags=re.M))
    assert {"train", "attack", "eval", "serve", "text"} <= shown
    assert shown <= commands, shown - commands
