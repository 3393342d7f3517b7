"""`advx eval --suite standard` against AutoAttack (100 iterations) on a real ImageNet model.

The ImageNet row of issue 15, target 1: the same comparison as ``bench/autoattack.py``
(robust accuracy at most the reference's + 0.2 pp, at most half its time), on
EfficientNet-Lite0 (``advx.models.pretrained``) and the images of ``bench/imagenet.py``
(the 7 bundled photos, then seeded crops/flips/brightness changes of the bundled photos),
labelled with the model's own clean prediction, so clean accuracy is 100% by construction
and robust accuracy is the share whose prediction no attack changes.

* ``advx``: :func:`advx.evaluate.evaluate` with each ``--suite`` (default ``standard``,
  the adaptive one; ``standard-full`` runs every attack on every survivor), one batch,
  red-flag probe off;
* reference: torchattacks 3.5.1's APGD-CE, APGD-T (9 target classes), FAB-T (9 target
  classes) at ``--aa-steps`` iterations and Square with 5000 queries, composed with
  ``MultiAttack`` as its ``AutoAttack`` does (see :func:`reference` on ``n_classes``).

The model is not adversarially trained, so the eps where robust accuracy is neither 0 nor
100% is tiny: 0.1/255 leaves about 40% of the images (measured on 16 images, APGD-CE 20
steps: 0.1/255 → 44%, 0.25/255 → 6%, 0.5/255 → 0%).

Time: on a GPU (``--device cuda``) wall seconds between ``torch.cuda.synchronize()``
calls, after an untimed warm-up of both sides; on the CPU, process CPU time.
Run: ``PYTHONPATH=src bench/.venv/bin/python bench/autoattack_imagenet.py --device cuda``
→ ``bench/results/autoattack_imagenet.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagenet import clock, get_model, images, predict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def reference(model: Any, eps: float, steps: int, square_queries: int = 5000) -> Any:
    """AutoAttack's standard composition from torchattacks' parts, ``steps`` iterations.

    torchattacks' ``n_classes`` only sets how many target classes APGD-T and FAB-T try
    (``n_classes - 1``, the most likely first); AutoAttack's standard version tries 9 on
    every dataset, ImageNet included, so both get ``n_classes=10`` here (``1000`` would
    run 999 targeted attacks per image, which is not AutoAttack)."""
    import torchattacks as ta

    return ta.MultiAttack(
        [
            ta.APGD(model, eps=eps, norm="Linf", steps=steps, seed=0, loss="ce", n_restarts=1),
            ta.APGDT(model, eps=eps, norm="Linf", steps=steps, seed=0, n_classes=10),
            ta.FAB(
                model, eps=eps, norm="Linf", steps=steps, seed=0, multi_targeted=True,
                n_classes=10, n_restarts=1,
            ),
            ta.Square(
                model, eps=eps, norm="Linf", seed=0, n_queries=square_queries, n_restarts=1
            ),
        ]
    )  # fmt: skip


def parse_eps(text: str) -> float:
    """``0.1/255`` or ``0.0004``."""
    if "/" in text:
        a, b = text.split("/", 1)
        return float(a) / float(b)
    return float(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=128, help="images (7 photos + synthetic)")
    ap.add_argument("--eps", type=parse_eps, action="append", help="linf budget, e.g. 0.1/255")
    ap.add_argument("--aa-steps", type=int, default=100)
    ap.add_argument("--suite", action="append", help="advx suite(s); default standard")
    ap.add_argument("--square-queries", type=int, default=5000, help="reference's Square budget")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "autoattack_imagenet.json"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    from advx.evaluate import Suite, SuiteAttack, evaluate
    from advx.targets import WhiteBox

    model = get_model(dev)
    x = images(args.n).to(dev)
    y = predict(model, x)
    rows: list[dict[str, Any]] = []
    for eps in args.eps or [0.1 / 255]:
        # untimed warm-up of both sides (kernel selection, lazy imports)
        few = {"apgd-ce": {"steps": 2}, "apgd-t": {"steps": 2}, "square": {"steps": 5}}
        warm = Suite("warm-up", tuple(SuiteAttack(k, v) for k, v in few.items()))
        evaluate(WhiteBox(model), (x[:8], y[:8]), eps=eps, suite=warm, probe=0)
        reference(model, eps, 2, square_queries=10)(x[:8], y[:8])
        advx_rows: dict[str, Any] = {}
        for suite in args.suite or ["standard"]:
            c0 = clock(dev)
            rep = evaluate(
                WhiteBox(model), (x, y), eps=eps, suite=suite, probe=0, batch_size=len(y)
            )
            secs = clock(dev) - c0
            advx_rows[suite] = {
                "robust_accuracy": rep.robust_accuracy[eps],
                "seconds": round(secs, 2),
                "per_attack": {k: v[eps] for k, v in rep.per_attack.items()},
                "escalation": {
                    k: v[eps]["escalation"]
                    for k, v in rep.details.items()
                    if "escalation" in v[eps]
                },
            }
            print(f"advx {suite} eps={eps * 255:g}/255: {advx_rows[suite]}", flush=True)
        c0 = clock(dev)
        x_aa = reference(model, eps, args.aa_steps, args.square_queries)(x, y)
        aa_secs = clock(dev) - c0
        theirs = float((predict(model, x_aa) == y).float().mean())
        print(f"AA-{args.aa_steps}: robust {theirs:.4f} in {aa_secs:.1f}s", flush=True)
        for r in advx_rows.values():
            r["gap_pp"] = round(100 * (r["robust_accuracy"] - theirs), 2)
            r["time_ratio"] = round(r["seconds"] / aa_secs, 3)
            r["as_strong"] = r["robust_accuracy"] <= theirs + 0.002
            r["fast_enough"] = r["seconds"] <= 0.5 * aa_secs
        rows.append({
            "eps": eps,
            "eps_255": round(eps * 255, 4),
            "n": len(y),
            "advx": advx_rows,
            "reference": {
                "what": f"torchattacks APGD-CE, APGD-T, FAB-T at {args.aa_steps} iterations, "
                f"Square-{args.square_queries} (MultiAttack)",
                "robust_accuracy": theirs,
                "seconds": round(aa_secs, 2),
            },
        })  # fmt: skip
    cuda = dev.startswith("cuda")
    result = {
        "bench": "autoattack_imagenet",
        "model": "efficientnet-lite0 (advx.models.pretrained)",
        "labels": "model's clean prediction",
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "clock": "wall seconds between torch.cuda.synchronize() calls"
        if cuda
        else "process CPU time",
        "torch": torch.__version__,
        "command": shlex.join(["python", *sys.argv]),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
