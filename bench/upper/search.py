"""Upper bounds for DeepWordBug and TextFooler on the MiniLM tweet classifier: beam
search (width W) over *every* candidate edit of every touchable word, up to the word cap
max(1, floor(0.15 n)) and one word beyond it, no query budget. Runs where a GPU is
(``python search.py PAYLOAD OUTDIR``; the payload comes from prep.py).

Variants: ``dwb``: all swap/substitute/delete/insert edits of each non-stop word (the
recipe's space); ``dwb-stop``: stop words touchable too; ``dwb-all``: also the letter
runs inside @mentions, URLs and hashtags; ``tf-<cos>-k<k>``: TextFooler's neighbours
(MiniLM token embeddings, POS and antonym filters as the recipe) with the sentence
similarity window check skipped on texts of <= 15 words (the best design)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from advx.text.sentence import is_word, match_case  # noqa: E402
from advx.text.transformations import char_edits  # noqa: E402

KINDS = ("swap", "substitute", "delete", "insert")
RUN = re.compile(r"[^\W_]+")
T0 = time.time()


class Victim:
    def __init__(self, payload: Path, device: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(payload / "all-MiniLM-L6-v2"))
        self.net = AutoModel.from_pretrained(str(payload / "all-MiniLM-L6-v2"), dtype=torch.float32)
        self.net = self.net.to(device).eval()
        h = load_file(str(payload / "head.safetensors"))
        w = [v for k, v in sorted(h.items()) if k.endswith("weight")][0]
        b = [v for k, v in sorted(h.items()) if k.endswith("bias")][0]
        self.w, self.b, self.device = w.to(device), b.to(device), device
        self.rows = 0

    @torch.inference_mode()
    def embed(self, texts: list[str], bs: int = 2048) -> torch.Tensor:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), 384)
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            batch = self.tok(
                [texts[j] for j in idx],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            ).to(self.device)
            hid = self.net(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).to(hid.dtype)
            e = torch.nn.functional.normalize((hid * m).sum(1) / m.sum(1).clamp_min(1), dim=-1)
            out[idx] = e.float().cpu()
        self.rows += len(texts)
        return out

    def probs(self, texts: list[str]) -> torch.Tensor:
        e = self.embed(texts).to(self.device)
        return (e @ self.w.T + self.b).softmax(1).cpu()


def build(item: dict, variant: str) -> tuple[list[str], list[str], list[bool], list[int]]:
    """Interleaved representation: text = f[0] + w[0] + f[1] + ... + w[-1] + f[-1]."""
    words, gaps, stop = item["words"], item["gaps"], item["stop"]
    f, w, ed, wi = [""], [], [], []
    for j, g in enumerate(gaps):
        if variant == "dwb-all":
            pos = 0
            for m in RUN.finditer(g):
                f[-1] += g[pos : m.start()]
                w.append(m.group())
                ed.append(True)
                wi.append(-1)
                f.append("")
                pos = m.end()
            f[-1] += g[pos:]
        else:
            f[-1] += g
        if j < len(words):
            w.append(words[j])
            ed.append(variant in ("dwb-stop", "dwb-all") or not stop[j])
            wi.append(j)
            f.append("")
    return f, w, ed, wi


def text_of(f: list[str], w: list[str]) -> str:
    return "".join(a + b for a, b in zip(f, w + [""], strict=False))


MAXC = int(os.environ.get("UPPER_MAXC", "0"))  # smoke tests only: truncate candidate lists


def dwb_cands(word: str) -> list[str]:
    if len(word) < 2:
        return []
    seen, out = {word}, []
    for k in KINDS:
        for c in char_edits(word, k):
            if c not in seen and is_word(c):
                seen.add(c)
                out.append(c)
    return out[:MAXC] if MAXC else out


def tf_cands(item: dict, j: int, word: str, cos: float, k: int) -> list[str]:
    out, seen = [], {word}
    for nb, c, ok in item["neigh"].get(str(j), [])[:k]:
        if c >= cos and ok:
            w = match_case(nb, word)
            if w not in seen and is_word(w):
                seen.add(w)
                out.append(w)
    return out[:MAXC] if MAXC else out


def search(v: Victim, item: dict, variant: str, width: int, extra: int) -> dict:
    f, w0, ed, wi = build(item, variant)
    n = len(item["words"])
    cap = max(1, int(0.15 * n + 1e-9))
    levels = cap + extra
    y = item["y"]
    if variant.startswith("tf"):
        _, cs, ks = variant.split("-")
        cos, k = float(cs), int(ks[1:])
        cands = [
            tf_cands(item, wi[p], w0[p], cos, k) if ed[p] and wi[p] >= 0 else []
            for p in range(len(w0))
        ]
    else:
        cands = [dwb_cands(w0[p]) if ed[p] else [] for p in range(len(w0))]
    check_sim = variant.startswith("tf") and n > 15
    orig_words = item["words"]
    beam = [(0.0, tuple(w0), frozenset())]
    res = {
        "n": n,
        "cap": cap,
        "editable": sum(bool(c) for c in cands),
        "candidates": sum(len(c) for c in cands),
        "level": None,
        "best": [],
        "adv": None,
    }
    for lev in range(1, levels + 1):
        states, texts, seen = [], [], set()
        for _, ws, ch in beam:
            for p, cl in enumerate(cands):
                if p in ch:
                    continue
                for c in cl:
                    nw = list(ws)
                    nw[p] = c
                    t = text_of(f, nw)
                    if t in seen:
                        continue
                    seen.add(t)
                    states.append((tuple(nw), ch | {p}, p))
                    texts.append(t)
        if not texts:
            break
        if check_sim:
            half = 7
            spans = []
            for nw, _, p in states:
                j = wi[p]
                lo = max(0, min(j - half, n - 15))
                advw = [nw[q] for q in range(len(nw)) if wi[q] >= 0]
                spans += [" ".join(orig_words[lo : lo + 15]), " ".join(advw[lo : lo + 15])]
            e = v.embed(spans)
            ok = ((e[0::2] * e[1::2]).sum(1) >= 0.8 - 1e-6).tolist()
            states = [s for s, o in zip(states, ok, strict=False) if o]
            texts = [t for t, o in zip(texts, ok, strict=False) if o]
            if not texts:
                break
        pr = v.probs(texts)
        score = 1 - pr[:, y]
        hit = (pr.argmax(1) != y).nonzero().flatten().tolist()
        res["best"].append(float(score.max()))
        if hit:
            b = max(hit, key=lambda i: float(score[i]))
            res["level"], res["adv"] = lev, texts[b]
            res["adv_score"] = float(score[b])
            return res
        top = score.topk(min(width, len(texts))).indices.tolist()
        beam = [(float(score[i]), states[i][0], states[i][1]) for i in top]
    return res


def main() -> None:
    payload, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    budget = float(os.environ.get("UPPER_SECONDS", "420"))
    width = int(os.environ.get("UPPER_WIDTH", "10"))
    variants = os.environ.get(
        "UPPER_VARIANTS", "dwb,tf-0.2-k50,tf-0.3-k50,tf-0.2-k100,dwb-stop,dwb-all"
    ).split(",")
    limit = int(os.environ.get("UPPER_N", "1000"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    items = [
        it for it in json.loads((payload / "items.json").read_text()) if it["split"] == "bench"
    ]
    items = (
        items[: limit // 2] + items[len(items) // 2 :][: limit // 2]
        if limit < len(items)
        else items
    )
    lo, hi = int(os.environ.get("UPPER_START", "0")), int(os.environ.get("UPPER_STOP", "100000"))
    items = items[lo:hi]
    v = Victim(payload, device)
    p = v.probs([it["text"] for it in items])
    diff = float((p - torch.tensor([it["cpu_probs"] for it in items])).abs().max())
    doc = {
        "start": lo,
        "device": device,
        "width": width,
        "max_prob_diff_vs_cpu": diff,
        "variants": {},
    }
    print("prob diff vs cpu", diff, flush=True)
    for var in variants:
        extra = 1 if var in ("dwb",) or var.startswith("tf") else 0
        rows = []
        t0 = time.time()
        for it in items:
            if time.time() - T0 > budget:
                break
            rows.append(search(v, it, var, width, extra))
        doc["variants"][var] = {"rows": rows, "seconds": time.time() - t0}
        ok = [r for r in rows if r["level"] is not None and r["level"] <= r["cap"]]
        print(
            f"{var}: {len(rows)} tweets, success {len(ok)}/{len(rows)}, "
            f"{time.time() - t0:.0f}s, rows {v.rows}",
            flush=True,
        )
        (outdir / os.environ.get("UPPER_FILE", "upper.json")).write_text(json.dumps(doc))


if __name__ == "__main__":
    main()
