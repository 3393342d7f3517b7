"""Run advx recipes (this tree's src) with given settings on the payload's tweets, on a
GPU machine: the frozen MiniLM encoder is moved to CUDA (weights stored in fp16 for the
transfer, computed in fp32). ``python designs.py PAYLOAD OUTFILE SPEC SPLIT...`` with SPEC
as bench/text.py's ``--recipes`` items (``deepwordbug:budget_aware=1``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch


def patch_encoder_to_cuda() -> None:
    from advx.text.minilm import MiniLMEncoder

    load, pooled = MiniLMEncoder.load, MiniLMEncoder.pooled

    def load_cuda(self):  # type: ignore[no-untyped-def]
        model, tok = load(self)
        if next(model.parameters()).device.type != "cuda":
            self._model = model.float().cuda()
        return self._model, tok

    def pooled_cuda(self, batch, model=None):  # type: ignore[no-untyped-def]
        batch = {k: v.cuda() for k, v in batch.items()}
        return pooled(self, batch, model).float().cpu()

    MiniLMEncoder.load = load_cuda  # type: ignore[method-assign]
    MiniLMEncoder.pooled = pooled_cuda  # type: ignore[method-assign]


def spec_of(spec: str) -> tuple[str, dict]:
    slug, *opts = spec.split(":")
    out: dict = {}
    for o in opts:
        k, v = o.split("=", 1)
        if v == "none":
            out[k] = None
        elif k in ("budget_aware", "skip_short_texts"):
            out[k] = v == "1"
        elif k == "ranking":
            out[k] = v
        else:
            out[k] = float(v) if "." in v else int(v)
    return slug, out


def main() -> None:
    payload, outfile, spec, *splits = sys.argv[1:]
    payload = Path(payload)
    torch.set_num_threads(1)
    if torch.cuda.is_available():
        patch_encoder_to_cuda()
    from advx.text.models import load
    from advx.text.recipes import create

    deadline = time.time() + float(os.environ.get("DESIGN_SECONDS", "400"))
    import advx.text.archs as archs

    # the payload's encoder is an fp16-stored copy of the one the head was trained on
    ref = json.loads((payload / "tweets-binary-minilm" / "encoder.json").read_text())
    archs.encoder_reference = lambda: ref  # type: ignore[assignment]
    model = load(payload / "tweets-binary-minilm")
    items = json.loads((payload / "items.json").read_text())
    if os.environ.get("DESIGN_N"):
        items = [it for it in items if it["split"] != "bench"][: int(os.environ["DESIGN_N"])]
    slug, opts = spec_of(spec)
    attack = create(slug, model=model, max_queries=2000, seed=0, max_words_share=0.15, **opts)
    doc: dict = {"spec": spec, "config": attack.config, "splits": {}}
    for split in splits:
        its = [it for it in items if it["split"] == split]
        recs = []
        t0 = time.time()
        for i0 in range(0, len(its), 10):
            if time.time() > deadline:
                break
            part = its[i0 : i0 + 10]
            res = attack(model, [it["text"] for it in part], torch.tensor([it["y"] for it in part]))
            for r in res:
                recs.append(
                    {
                        "succeeded": r.succeeded,
                        "skipped": r.skipped,
                        "y": r.y,
                        "queries": r.queries,
                        "words_changed": r.words_changed,
                        "num_words": r.num_words,
                        "original": r.original,
                        "adversarial": r.adversarial,
                    }
                )
        doc["splits"][split] = {"records": recs, "seconds": time.time() - t0}
        att = [r for r in recs if not r["skipped"]]
        won = [r for r in att if r["succeeded"]]
        print(
            f"{spec} {split}: {len(won)}/{len(att)} "
            f"q {sum(r['queries'] for r in att) / max(1, len(att)):.0f} "
            f"{time.time() - t0:.0f}s",
            flush=True,
        )
        Path(outfile).write_text(json.dumps(doc))


if __name__ == "__main__":
    main()
