#!/usr/bin/env bash
# The GPU checks in one go, for any machine with a CUDA device:
#   1. the cuda-marked tests (device/dtype/amp correctness, batching on the GPU),
#   2. bench/imagenet.py (PGD on the pretrained ImageNet model), if present.
# Prints absolute wall times (they only mean something on a GPU).
# Usage: scripts/gpu-check.sh            (from the repository root; uses .venv if present)
#        PY=/path/to/python scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    print(
        f"gpu-check: no CUDA device (torch {torch.__version__}, built with CUDA "
        f"{torch.version.cuda or 'none'}); run this on a machine with an NVIDIA GPU and a "
        "CUDA build of torch",
        file=sys.stderr,
    )
    sys.exit(2)
print(f"gpu-check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PYEOF
then
  exit 2
fi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t0=$(now)
"$PY" -m pytest -m cuda -q -p no:cacheprovider tests
t1=$(now)
echo "gpu-check: cuda-marked tests: $(secs "$t0" "$t1") s"

if [[ -f bench/imagenet.py ]]; then
  args=("$@")
  if "$PY" bench/imagenet.py --help 2>/dev/null | grep -q -- "--device"; then
    args=(--device cuda "${args[@]}")
  fi
  "$PY" bench/imagenet.py "${args[@]}"
  echo "gpu-check: bench/imagenet.py: $(secs "$t1" "$(now)") s"
else
  echo "gpu-check: bench/imagenet.py not found; skipped"
fi
echo "gpu-check: total $(secs "$t0" "$(now)") s"
