"""Summarise a device run of bench/upper (designs.py and search.py outputs, unpacked in
DIR) into bench/results/text-transformer-minilm-designs.json and markdown tables:
``python bench/upper/report.py DIR [DIR2 ...]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def design_rows(dirs: list[Path]) -> dict:
    from text import compare_row
    from text_peer import tokens_changed

    out: dict = {}
    for d in dirs:
        for f in sorted(d.glob("d*.json"), key=lambda p: int(p.stem[1:])):
            doc = json.loads(f.read_text())
            for split, part in doc["splits"].items():
                recs = []
                for r in part["records"]:
                    tc, tn = tokens_changed(r["original"], r["adversarial"])
                    recs.append(
                        {
                            **r,
                            "tokens_changed": tc,
                            "num_tokens": tn,
                            "status": "succeeded"
                            if r["succeeded"]
                            else "skipped"
                            if r["skipped"]
                            else "failed",
                        }
                    )
                row = compare_row(recs, ("negative", "positive"))
                row["gpu_seconds_wall"] = part["seconds"]
                out.setdefault(doc["spec"], {"config": doc["config"]})[split] = row
    return out


def upper_rows(dirs: list[Path], items: list[dict]) -> dict:
    bench = [it for it in items if it["split"] == "bench"]
    rows: dict = {}
    for d in dirs:
        for f in d.glob("*.json"):
            if f.stem.startswith("d") and f.stem[1:].isdigit():
                continue
            doc = json.loads(f.read_text())
            start = doc.get("start", 0)
            for var, v in doc["variants"].items():
                for k, r in enumerate(v["rows"]):
                    rows.setdefault(var, {})[start + k] = {**r, "y": bench[start + k]["y"]}
    out = {}
    for var, by in rows.items():
        rs = list(by.values())

        def rate(rr, extra=0):
            return sum(r["level"] is not None and r["level"] <= r["cap"] + extra for r in rr) / max(
                1, len(rr)
            )

        out[var] = {
            "n": len(rs),
            "success_at_cap": rate(rs),
            "success_at_cap_plus_1": rate(rs, 1) if var == "dwb" or var.startswith("tf") else None,
            "by_class": {
                name: {
                    "n": len([r for r in rs if r["y"] == c]),
                    "success_at_cap": rate([r for r in rs if r["y"] == c]),
                    "success_at_cap_plus_1": rate([r for r in rs if r["y"] == c], 1),
                }
                for c, name in enumerate(("negative", "positive"))
            },
            "by_cap": {
                str(cap): {
                    "n": len([r for r in rs if r["cap"] == cap]),
                    "success_at_cap": rate([r for r in rs if r["cap"] == cap]),
                }
                for cap in sorted({r["cap"] for r in rs})
            },
            "rows": rs,
        }
    return out


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:]]
    # the sampled tweets (split, text, label), written by prep.py
    items = json.loads((ROOT / "bench" / "upper" / "items-meta.json").read_text())
    doc = {"designs": design_rows(dirs), "upper": upper_rows(dirs, items)}
    out = ROOT / "bench" / "results" / "text-transformer-minilm-designs.json"
    out.write_text(json.dumps(doc, indent=1))
    pct = lambda v: "—" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for spec, d in doc["designs"].items():
        h, b = d.get("heldout"), d.get("bench")
        print(
            f"| {spec} | "
            + " | ".join(
                f"{pct(x['success_rate'])} ({pct(x['by_class']['negative']['success_rate'])} / "
                f"{pct(x['by_class']['positive']['success_rate'])}), {x['words_changed_pct']:.1f}% words, "
                f"{x['mean_queries']:.0f} q"
                for x in (h, b)
                if x
            )
            + " |"
        )
    for var, u in doc["upper"].items():
        print(
            var,
            u["n"],
            pct(u["success_at_cap"]),
            pct(u["success_at_cap_plus_1"]),
            {
                k: (v["n"], pct(v["success_at_cap"]), pct(v["success_at_cap_plus_1"]))
                for k, v in u["by_class"].items()
            },
            {k: (v["n"], pct(v["success_at_cap"])) for k, v in u["by_cap"].items()},
        )
    print("wrote", out)


if __name__ == "__main__":
    main()
