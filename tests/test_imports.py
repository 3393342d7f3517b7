"""`import advx` (and the CLI) must stay cheap: no heavy optional dependency at import."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "transformers",
    "nltk",
    "matplotlib",
    "fastapi",
    "uvicorn",
    "onnxruntime",
    "httpx",
    "sklearn",
)


def test_import_touches_no_heavy_dependency():
    code = (
        "import sys, advx, advx.attacks, advx.targets, advx.models, advx.cli, advx.data;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at `import advx` time: {out.stdout.strip()}"
