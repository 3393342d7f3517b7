#!/usr/bin/env bash
# MLServer (Seldon's Open Inference Protocol server) in its own virtual environment,
# .venv-mlserver: it pins an older FastAPI than advx uses, so the two cannot share one.
# tests/test_mlserver.py starts `mlserver start` from here and attacks it over HTTP.
#
# The scikit-learn version is pinned to the one in the main venv so that a model written
# with joblib by the tests loads in the server with the same class layout.
# Idempotent: does nothing when the environment already has the wanted versions.
# Run from the repository root (scripts/setup.sh does); honours PYTHON, VENV, MLSERVER_VENV.
set -euo pipefail
cd "$(dirname "$0")/../.."

MLSERVER_VERSION=1.7.1
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
MLVENV=${MLSERVER_VENV:-.venv-mlserver}

say() { printf '\033[1m[setup mlserver]\033[0m %s\n' "$*"; }

# MLServer 1.7.1 supports Python >=3.9,<3.13: pick an interpreter in that range.
pick_python() {
  for cand in "$PYTHON" python3.12 python3.11 python3.10 python3; do
    command -v "$cand" >/dev/null 2>&1 || continue
    if "$cand" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] < (3, 13)))' 2>/dev/null; then
      echo "$cand"
      return 0
    fi
  done
  return 1
}

SKLEARN=$("$VENV/bin/python" -c 'import sklearn; print(sklearn.__version__)' 2>/dev/null || true)
if [ -z "$SKLEARN" ]; then
  echo "mlserver set-up: the main venv ($VENV) has no scikit-learn; run scripts/setup.sh first" >&2
  exit 1
fi

if [ -x "$MLVENV/bin/mlserver" ] && "$MLVENV/bin/python" - "$MLSERVER_VERSION" "$SKLEARN" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(not (version("mlserver") == sys.argv[1] and version("mlserver-sklearn") == sys.argv[1]
              and version("scikit-learn") == sys.argv[2]))
PY
then
  say "$MLVENV already has mlserver $MLSERVER_VERSION and scikit-learn $SKLEARN"
  exit 0
fi

PY=$(pick_python) || {
  echo "mlserver set-up: MLServer $MLSERVER_VERSION needs Python 3.9-3.12; install one (e.g. apt-get install python3.11-venv) and set PYTHON=" >&2
  exit 1
}
if [ ! -x "$MLVENV/bin/python" ]; then
  say "creating $MLVENV with $PY"
  "$PY" -m venv "$MLVENV"
fi
PIP="$MLVENV/bin/python -m pip --disable-pip-version-check -q"
say "installing mlserver==$MLSERVER_VERSION mlserver-sklearn==$MLSERVER_VERSION scikit-learn==$SKLEARN"
if ! $PIP install "mlserver==$MLSERVER_VERSION" "mlserver-sklearn==$MLSERVER_VERSION" "scikit-learn==$SKLEARN"; then
  # A newer scikit-learn may not support this interpreter: fall back to any version and
  # let the test report a mismatch rather than leaving no server at all.
  say "scikit-learn==$SKLEARN not installable here; installing the newest that is"
  $PIP install "mlserver==$MLSERVER_VERSION" "mlserver-sklearn==$MLSERVER_VERSION" scikit-learn
fi
"$MLVENV/bin/mlserver" --help >/dev/null
say "ready: $MLVENV/bin/mlserver"
