"""Build the payload for the upper-bound search (bench/upper/search.py) on a GPU machine:
the sampled tweets, their touchable words, TextFooler's filtered neighbour lists, the
MiniLM classifier's head and an fp16 copy of the encoder (the full one is 90 MB).

How the README's numbers were made (2026-12-04, one H200, 16 cores):

    python bench/upper/prep.py P     # here; then copy src/, bench/upper/*.py, the
                                     # minilm checkpoint dir and WordNet (tar) into P
    # there, with PYTHONPATH=P/src ADVX_DATA_DIR=P, in parallel:
    UPPER_SECONDS=370 python P/search.py P OUT           # upper bounds (time-guarded)
    python P/designs.py P OUT/dN.json SPEC heldout bench  # one per design SPEC
    # back here:
    python bench/upper/report.py OUT                   # -> bench/results/...-designs.json
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def main(out: Path) -> None:
    from text import balanced_sample, get_model

    from advx.data import load
    from advx.text.constraints import default_stopwords
    from advx.text.embeddings import WordEmbeddings
    from advx.text.minilm import model_dir
    from advx.text.sentence import Sentence
    from advx.text.wordnet import WordNet

    out.mkdir(parents=True, exist_ok=True)
    md = ROOT / "bench" / ".models"
    mm, _ = get_model("minilm", md)
    wm, _ = get_model("wordcnn", md)
    test = load("tweets-binary", "test")
    pool = test.head(1000)
    idx = balanced_sample({"w": wm, "m": mm}, list(pool.texts), pool.y, 100)
    # held-out: minilm-correct tweets after the pool (never in any bench sample)
    ho = test.head(3000)
    ho_texts = list(ho.texts[1000:3000])
    ho_y = ho.y[1000:3000]
    p = mm.predict_proba(ho_texts).argmax(1)
    ho_idx = []
    for c in (0, 1):
        ho_idx += [i for i in range(len(ho_texts)) if int(ho_y[i]) == c and int(p[i]) == c][:100]
    stop = default_stopwords()
    wn = WordNet.default()
    space = WordEmbeddings.minilm()
    items = []
    for split, texts, ys in (
        ("bench", [pool.texts[i] for i in idx], pool.y[idx].tolist()),
        ("heldout", [ho_texts[i] for i in sorted(ho_idx)], ho_y[sorted(ho_idx)].tolist()),
    ):
        probs = mm.predict_proba(texts)
        for t, y, pr in zip(texts, ys, probs.tolist(), strict=True):
            s = Sentence.parse(t)
            neigh = {}
            for i, w in enumerate(s.words):
                if w.lower() in stop:
                    continue
                cands = []
                for nb, cos in space.neighbours(w, 100, 0.0):
                    a, b = wn.parts_of_speech(w), wn.parts_of_speech(nb)
                    ok = (
                        (not a or not b or bool(a & b))
                        and nb not in wn.antonyms(w.lower())
                        and w.lower() not in wn.antonyms(nb)
                    )
                    cands.append([nb, round(cos, 5), ok])
                neigh[i] = cands
            items.append(
                {
                    "split": split,
                    "text": t,
                    "y": y,
                    "cpu_probs": pr,
                    "words": list(s.words),
                    "gaps": list(s.gaps),
                    "stop": [w.lower() in stop for w in s.words],
                    "neigh": neigh,
                }
            )
    (out / "items.json").write_text(json.dumps(items))
    meta = [{"split": it["split"], "text": it["text"], "y": it["y"]} for it in items]
    (ROOT / "bench" / "upper" / "items-meta.json").write_text(json.dumps(meta))
    head = {k: v for k, v in mm.net.state_dict().items() if k.startswith("head")}
    save_file({k: v.float().contiguous() for k, v in head.items()}, str(out / "head.safetensors"))
    enc = out / "all-MiniLM-L6-v2"
    enc.mkdir(exist_ok=True)
    src = model_dir()
    for f in (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ):
        shutil.copy(src / f, enc / f)
    w = load_file(str(src / "model.safetensors"))
    save_file({k: v.half().contiguous() for k, v in w.items()}, str(enc / "model.safetensors"))
    print(len(items), "items;", list(head))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
