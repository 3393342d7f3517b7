"""Text attacks on the tweet sentiment models: success, words changed, queries.

For each model (``wordcnn``, ``lstm``, ``minilm``; optionally ``bow``) trained on
``tweets-binary`` with the registry's defaults (trained once, cached under
``bench/.models``), and for each recipe (``deepwordbug``, ``pwws``, ``textfooler``,
``hotflip``), attack the first ``--n`` tweets of the test split (the split is shuffled,
so this is a representative sample) with ``--max-queries`` per tweet and report:

* success rate (over tweets the model got right), split by true class;
* mean share of words changed (over successes);
* mean queries per attacked tweet;
* seconds.

Targets (issue 7): >= 90% success with <= 15% of words changed for the word-level
recipes on wordcnn/lstm; queries at or below TextAttack's published figure for
DeepWordBug against an LSTM on MR (Morris et al. 2020, "TextAttack", Table 4: 81.5%
success, 15.5% of words perturbed, 32.7 queries); the data differ, so the comparison is
qualitative.

Why the tweet models resist (measured, not assumed; see ``removal_ceiling`` and
``success_by_class`` in the JSON). Four in five correctly classified test tweets are
negative, mostly airline complaints, and their negative evidence does not sit in the
words a recipe may touch: with *every* attackable word deleted at once (stop words,
negations, mentions, URLs, punctuation and emoji stay), only 6-9% of them flip on
``wordcnn``/``lstm``. Character edits map a word to the unknown token, which removes
it much like deletion, so DeepWordBug is capped near that on negative tweets however it
searches; word swaps get further only by adding positive evidence with a near-synonym.
Positive tweets flip far more often (55-90%). Each recipe keeps stop words (negations
included) untouched, as the papers and TextAttack do; the issue's 90% target assumes
a corpus like MR, balanced and with sentiment in content words.

``success_rate_balanced`` is the mean of the per-class success rates (the success rate
on a class-balanced sample, as MR is).

``--adv`` also trains ``wordcnn`` with DeepWordBug augmentation (``advx train --adv
deepwordbug``) and reports its clean accuracy and DeepWordBug success next to the plain
model; ``--transfer`` evaluates every model on the adversarial texts crafted on every
other, for each recipe. Attack results are cached under ``--models-dir``/runs, so a
rerun only computes what is missing.

Run: ``.venv/bin/python bench/text.py [--n 200] [--adv] [--transfer]``.
Writes ``bench/results/text.json``.

``--balanced PER_CLASS`` (issue 15) attacks instead a class-balanced sample that every
``--sample-archs`` model classifies correctly, under a ``--words-share`` cap, and with
``--textattack`` runs TextAttack 0.3.11's ``DeepWordBugGao2018`` on the same texts and
model (``bench/text_peer.py``; ``BENCH_TEXTATTACK=1 bench/setup.sh`` installs it).
Writes ``bench/results/text-transformer.json``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
TEXTATTACK_DWB_LSTM_MR = {"success_rate": 0.815, "words_changed_pct": 15.5, "queries": 32.7}


def get_model(arch: str, models_dir: Path, *, adv: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The model ``arch`` trained on tweets-binary (cached in ``models_dir``), and its
    training record (test accuracy, seconds)."""
    import advx.models  # noqa: F401  (registers the text archs)
    from advx.models import read_info
    from advx.text.models import load
    from advx.text.training import TextAugmentation, train

    path = models_dir / (f"tweets-binary-{arch}" + (f"-adv-{adv}" if adv else ""))
    if not (path / "model.json").is_file():
        print(
            f"training {arch}{' with ' + adv + ' augmentation' if adv else ''} -> {path}",
            flush=True,
        )
        train(
            arch, "tweets-binary", out=path, adversary=TextAugmentation(attack=adv) if adv else None
        )
    info = read_info(path)
    rec = {
        "test_accuracy": info.get("test_accuracy"),
        "train_seconds": info.get("training", {}).get("seconds"),
        "epochs": info.get("training", {}).get("epochs"),
        "adversarial": info.get("adversarial"),
        # the weights' hash names the cached attack runs, so retraining invalidates them
        "checkpoint": "".join(
            f["sha256"][:8] for _, f in sorted(info.get("files", {}).items()) if "sha256" in f
        ),
    }
    return load(path), rec


def run_attack(
    model: Any, recipe: str, texts: list[str], y: torch.Tensor, max_queries: int,
    cache: Path | None, words_share: float | None = None,
) -> Any:  # fmt: skip
    """The results of ``recipe`` on ``model`` (read from ``cache`` when a run with the same
    texts and the same attack configuration was saved there)."""
    from advx.text.recipes import create
    from advx.text.result import TextAttackResults

    attack = create(
        recipe, model=model, max_queries=max_queries, seed=0, max_words_share=words_share
    )
    if cache is not None and cache.is_file():
        res = TextAttackResults.load(cache)
        if [r.original for r in res] == texts and res.config == attack.config:
            return res
    res = attack(model, texts, y)
    if cache is not None:
        res.save(cache)
    return res


def attack_row(
    model: Any, recipe: str, texts: list[str], y: torch.Tensor, max_queries: int,
    cache: Path | None = None,
) -> tuple[dict[str, Any], Any]:  # fmt: skip
    """One recipe on one model: the summary plus success by true class, and the results."""
    res = run_attack(model, recipe, texts, y, max_queries, cache)
    s = res.summary()
    by_class = {}
    for c, name in enumerate(model.class_names):
        att = [r for r in res if r.y == c and not r.skipped]
        by_class[name] = (sum(r.succeeded for r in att) / len(att)) if att else None
    row = {
        "recipe": recipe,
        **{k: s[k] for k in ("n", "clean_accuracy", "robust_accuracy", "success_rate",
                             "mean_words_changed_pct", "mean_queries", "seconds")},
        "success_by_class": by_class,
        "success_rate_balanced": _mean([v for v in by_class.values() if v is not None]),
        "max_words_changed_pct": max((r.words_changed_pct for r in res if r.succeeded), default=None),
    }  # fmt: skip
    return row, res


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def balanced_sample(
    models: dict[str, Any], texts: list[str], y: torch.Tensor, per_class: int
) -> list[int]:
    """Indices of the first ``per_class`` tweets of each class (in test-split order, which
    is shuffled) that *every* model classifies correctly: the same texts for each model."""
    ok = torch.ones(len(texts), dtype=torch.bool)
    for m in models.values():
        with torch.no_grad():
            ok &= m.predict_proba(texts).argmax(1) == y
    out: list[int] = []
    for c in range(int(y.max()) + 1):
        idx = [i for i in range(len(texts)) if int(y[i]) == c and bool(ok[i])][:per_class]
        if len(idx) < per_class:
            raise SystemExit(f"only {len(idx)} tweets of class {c} in the pool; raise --pool")
        out += idx
    return sorted(out)


def records_of(res: Any) -> list[dict[str, Any]]:
    """advx results as the per-example records :func:`compare_row` reads."""
    from text_peer import tokens_changed

    out = []
    for r in res:
        tc, tn = tokens_changed(r.original, r.adversarial)
        out.append({
            "status": "succeeded" if r.succeeded else "skipped" if r.skipped else "failed",
            "y": r.y, "queries": r.queries, "words_changed": r.words_changed,
            "num_words": r.num_words, "tokens_changed": tc, "num_tokens": tn,
        })  # fmt: skip
    return out


def compare_row(records: list[dict[str, Any]], class_names: tuple[str, ...]) -> dict[str, Any]:
    """Success, words changed (own count and the neutral token count, % over successes)
    and queries (mean over attacked tweets), overall and per true class; how many
    successes edited text outside advx's words (mentions, URLs: TextAttack may)."""
    from text_peer import edits_outside_words

    def stats(rs: list[dict[str, Any]]) -> dict[str, Any]:
        att = [r for r in rs if r["status"] != "skipped"]
        won = [r for r in att if r["status"] == "succeeded"]
        return {
            "attacked": len(att),
            "success_rate": len(won) / len(att) if att else None,
            "words_changed_pct": _mean([100 * r["words_changed"] / max(1, r["num_words"])
                                        for r in won]),
            "tokens_changed_pct": _mean([100 * r["tokens_changed"] / max(1, r["num_tokens"])
                                         for r in won]),
            "max_tokens_changed_pct": max((100 * r["tokens_changed"] / max(1, r["num_tokens"])
                                           for r in won), default=None),
            "mean_queries": _mean([float(r["queries"]) for r in att]),
            "successes_editing_mentions_urls": sum(
                edits_outside_words(r["original"], r["adversarial"]) for r in won
            ),
            "mean_queries_successes": _mean([float(r["queries"]) for r in won]),
        }  # fmt: skip

    row = stats(records)
    row["by_class"] = {
        name: stats([r for r in records if r["y"] == c]) for c, name in enumerate(class_names)
    }
    return row


def removal_ceiling(model: Any, texts: list[str], y: torch.Tensor) -> dict[str, Any]:
    """How far removing evidence can go: for the tweets the model gets right, the share
    (per true class) whose label flips when *every* word the recipes may touch (all but
    stop words, mentions, URLs, punctuation, emoji) is deleted at once. A typo that maps
    a word to the unknown token removes it in much the same way, so this bounds what
    DeepWordBug can do, whatever the search; word swaps can exceed it only by adding
    evidence for the other class."""
    from advx.text.constraints import default_stopwords
    from advx.text.sentence import Sentence

    stop = default_stopwords()
    clean = model.predict_proba(texts).argmax(1)
    stripped = []
    for t in texts:
        s = Sentence.parse(t)
        for i in reversed(range(len(s))):
            if s.words[i].lower() not in stop:
                s = Sentence.parse(s.with_word(i, ""))
        stripped.append(s.text)
    after = model.predict_proba(stripped).argmax(1)
    out: dict[str, Any] = {}
    for c, name in enumerate(model.class_names):
        right = [i for i in range(len(texts)) if int(y[i]) == c and int(clean[i]) == c]
        flips = sum(int(after[i]) != c for i in right)
        out[name] = {"n": len(right), "flip_rate": flips / len(right) if right else None}
    return out


def fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * v:.1f}%" if pct else f"{v:.1f}"


def transformer_bench(args: argparse.Namespace) -> None:
    """Issue 15, target 4: a class-balanced sample that every model gets right, each
    recipe under the words cap, and (``--textattack``) TextAttack's DeepWordBug on the
    same texts, model, query budget and cap. Writes ``--out`` after each model."""
    from advx.data import load

    if args.out == ROOT / "bench" / "results" / "text.json":
        args.out = ROOT / "bench" / "results" / "text-transformer.json"
    pool = load("tweets-binary", "test").head(args.pool)
    archs = args.archs.split(",")
    models, recs = {}, {}
    for arch in dict.fromkeys(archs + args.sample_archs.split(",")):
        models[arch], recs[arch] = get_model(arch, args.models_dir)
    judges = {a: models[a] for a in args.sample_archs.split(",")}
    idx = balanced_sample(judges, list(pool.texts), pool.y, args.balanced)
    texts, y = [pool.texts[i] for i in idx], pool.y[idx]
    doc: dict[str, Any] = {
        "n": len(texts), "per_class": args.balanced, "pool": args.pool,
        "sample_archs": args.sample_archs,
        "max_queries": args.max_queries, "words_share": args.words_share,
        "sample": "first PER_CLASS test tweets of each class that every model classifies "
                  "correctly (test split order)",
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "models": {},
    }  # fmt: skip
    runs = args.models_dir / "runs"
    for arch in archs:
        model, rec = models[arch], recs[arch]
        with torch.no_grad():
            ceiling = removal_ceiling(model, texts, y)
        entry: dict[str, Any] = {**rec, "removal_ceiling": ceiling, "advx": {}}
        for spec in args.recipes.split(","):
            recipe, options = _recipe_spec(spec)
            recs_advx = advx_records(
                model, recipe, texts, y, args, runs / rec["checkpoint"], **options
            )
            row = compare_row(recs_advx, model.class_names)
            row["cpu_seconds"] = sum(r["cpu_seconds"] for r in recs_advx)
            entry["advx"][spec] = row
            _say(arch, f"advx {spec}", row, ceiling)
        if args.textattack:
            recs_ta = textattack_records(model, texts, y, args, runs / rec["checkpoint"])
            row = compare_row(recs_ta, model.class_names)
            row["cpu_seconds"] = sum(r["cpu_seconds"] for r in recs_ta)
            entry["textattack"] = {"deepwordbug": row}
            _say(arch, "TextAttack DWB", row, ceiling)
        doc["models"][arch] = entry
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")


def _recipe_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"textfooler:skip_short_texts=1:min_word_cos=0.2"`` -> the slug and its settings
    (``0``/``1`` for flags, numbers, ``none``)."""
    slug, *opts = spec.split(":")
    out: dict[str, Any] = {}
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


def _per_text(path: Path, texts: list[str], y: torch.Tensor, compute: Any) -> list[dict[str, Any]]:
    """Per-text records cached in ``path`` (a JSON object text -> record): only texts not
    there are computed (``compute(texts, labels) -> records``), so a sample can grow or
    shrink without rerunning what was done (each text's attack is seeded by itself)."""
    done: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [i for i, t in enumerate(texts) if t not in done]
    if todo:
        for i0 in range(0, len(todo), 20):  # saved every 20 texts: a killed run resumes
            part = todo[i0 : i0 + 20]
            got = compute([texts[i] for i in part], y[part])
            for i, r in zip(part, got, strict=True):
                done[texts[i]] = r
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(done))
    return [done[t] for t in texts]


def advx_records(
    model: Any, recipe: str, texts: list[str], y: torch.Tensor, args: argparse.Namespace,
    where: Path, **options: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """advx's ``recipe`` (with ``options``) on each text (cached per text, under the
    attack's configuration)."""
    import hashlib

    from advx.text.recipes import create

    attack = create(
        recipe, model=model, max_queries=args.max_queries, seed=getattr(args, "seed", 0),
        max_words_share=args.words_share, **options,
    )  # fmt: skip
    key = hashlib.sha256(json.dumps(attack.config, sort_keys=True).encode()).hexdigest()[:12]

    def compute(ts: list[str], ys: torch.Tensor) -> list[dict[str, Any]]:
        t0 = time.process_time()
        res = attack(model, ts, ys)
        cpu = (time.process_time() - t0) / len(ts)
        return [{**r, "original": o.original, "adversarial": o.adversarial, "cpu_seconds": cpu}
                for r, o in zip(records_of(res), res, strict=True)]  # fmt: skip

    cuda = "-cuda" if getattr(args, "cuda", False) else ""
    return _per_text(where / f"advx-{recipe}-{key}{cuda}.json", texts, y, compute)


def textattack_records(
    model: Any, texts: list[str], y: torch.Tensor, args: argparse.Namespace, where: Path
) -> list[dict[str, Any]]:
    """TextAttack's DeepWordBugGao2018 on each text (cached per text)."""
    from text_peer import run_deepwordbug

    def compute(ts: list[str], ys: torch.Tensor) -> list[dict[str, Any]]:
        return run_deepwordbug(
            model, ts, ys.tolist(), max_queries=args.max_queries, words_share=args.words_share,
            seed=seed,
        )  # fmt: skip

    seed = getattr(args, "seed", 0)
    tag = f"-s{seed}" if seed else ""  # seed 0 keeps the earlier runs' cache name
    name = f"textattack-dwb-advxcap-q{args.max_queries}-w{args.words_share}{tag}.json"
    return _per_text(where / name, texts, y, compute)


def _say(arch: str, what: str, row: dict[str, Any], ceiling: dict[str, Any]) -> None:
    by = row["by_class"]
    print(f"{arch:8s} {what:18s} success {fmt(row['success_rate'], True):>6s} "
          + " ".join(f"({k} {fmt(v['success_rate'], True)}, ceiling "
                     f"{fmt(ceiling[k]['flip_rate'], True)})" for k, v in by.items())
          + f"  words {fmt(row['words_changed_pct'])}% tokens {fmt(row['tokens_changed_pct'])}%"
          f"  queries {fmt(row['mean_queries'])}", flush=True)  # fmt: skip


def encoder_on_cuda() -> None:
    """Run the shared frozen MiniLM encoder on the GPU (its embeddings come back to the
    CPU, where the heads and the attacks live). On the bench sample this gives the CPU
    rows tweet for tweet (checked: bench/README.md)."""
    from advx.text.minilm import MiniLMEncoder

    load, pooled = MiniLMEncoder.load, MiniLMEncoder.pooled

    def load_cuda(self: MiniLMEncoder) -> tuple[Any, Any]:
        model, tok = load(self)
        if next(model.parameters()).device.type != "cuda":
            self._model = model.float().cuda()
        return self._model, tok

    def pooled_cuda(self: MiniLMEncoder, batch: dict[str, Any], model: Any = None) -> Any:
        return pooled(self, {k: v.cuda() for k, v in batch.items()}, model).float().cpu()

    MiniLMEncoder.load = load_cuda  # type: ignore[method-assign]
    MiniLMEncoder.pooled = pooled_cuda  # type: ignore[method-assign]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="test tweets per attack")
    p.add_argument("--max-queries", type=int, default=2000)
    p.add_argument("--archs", default="wordcnn,lstm,minilm")
    p.add_argument("--recipes", default="deepwordbug,pwws,textfooler,hotflip")
    p.add_argument("--models-dir", type=Path, default=ROOT / "bench" / ".models")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text.json")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--adv", action="store_true", help="also train wordcnn with DeepWordBug augmentation"
    )
    p.add_argument("--transfer", action="store_true", help="TextFooler transfer between the models")
    p.add_argument(
        "--balanced",
        type=int,
        default=0,
        metavar="PER_CLASS",
        help="the issue-15 run: PER_CLASS tweets of each class that every model "
        "gets right, --words-share cap, results to --out (text-transformer.json)",
    )
    p.add_argument("--pool", type=int, default=1000, help="test tweets to sample from")
    p.add_argument(
        "--sample-archs",
        default="wordcnn,lstm,minilm",
        help="models that must all classify a sampled tweet correctly",
    )
    p.add_argument(
        "--words-share",
        type=float,
        default=None,
        help="cap on the share of words changed (e.g. 0.15)",
    )
    p.add_argument(
        "--textattack",
        action="store_true",
        help="also run TextAttack 0.3.11's DeepWordBugGao2018 on each model "
        "(bench/.venv after BENCH_TEXTATTACK=1 bench/setup.sh)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of both libraries' random edits (with --balanced; runs cached per seed): "
        "rerun with several to see how much of a success-rate gap is the draw",
    )
    p.add_argument(
        "--cuda",
        action="store_true",
        help="run the frozen MiniLM encoder on CUDA (attack runs cached apart from CPU ones)",
    )
    args = p.parse_args()  # fmt: skip
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cuda:
        encoder_on_cuda()
    if args.balanced:
        transformer_bench(args)
        return

    from advx.data import load

    test = load("tweets-binary", "test").head(args.n)
    texts, y = list(test.texts), test.y
    doc: dict[str, Any] = {
        "n": len(texts),
        "max_queries": args.max_queries,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()},
        "textattack_dwb_lstm_mr": TEXTATTACK_DWB_LSTM_MR,
        "models": {},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    models, crafted = {}, {}
    runs = args.models_dir / "runs"
    for arch in args.archs.split(","):
        model, rec = get_model(arch, args.models_dir)
        models[arch] = model
        with torch.no_grad():
            ceiling = removal_ceiling(model, texts, y)
        print(f"{arch:8s} all attackable words deleted flips "
              + ", ".join(f"{k} {fmt(v['flip_rate'], True)}" for k, v in ceiling.items()),
              flush=True)  # fmt: skip
        rows = []
        for recipe in args.recipes.split(","):
            t0 = time.perf_counter()
            cache = (
                runs / f"{arch}-{rec['checkpoint']}-{recipe}-n{len(texts)}-q{args.max_queries}.json"
            )
            row, res = attack_row(model, recipe, texts, y, args.max_queries, cache)
            crafted[(arch, recipe)] = res
            rows.append(row)
            print(f"{arch:8s} {recipe:12s} success {fmt(row['success_rate'], True):>6s} "
                  f"(neg {fmt(row['success_by_class'].get('negative'), True)}, "
                  f"pos {fmt(row['success_by_class'].get('positive'), True)})  "
                  f"words {fmt(row['mean_words_changed_pct'])}%  queries {fmt(row['mean_queries'])}  "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)  # fmt: skip
        doc["models"][arch] = {**rec, "removal_ceiling": ceiling, "attacks": rows}
        args.out.write_text(json.dumps(doc, indent=1))
    if args.adv:
        model, rec = get_model("wordcnn", args.models_dir, adv="deepwordbug")
        cache = (
            runs
            / f"wordcnn-adv-{rec['checkpoint']}-deepwordbug-n{len(texts)}-q{args.max_queries}.json"
        )
        row, _ = attack_row(model, "deepwordbug", texts, y, args.max_queries, cache)
        doc["adversarial_training"] = {
            "arch": "wordcnn",
            "adv": "deepwordbug",
            **rec,
            "attack": row,
        }
        print(f"wordcnn+adv deepwordbug: clean acc {fmt(rec['test_accuracy'], True)}, "
              f"success {fmt(row['success_rate'], True)}", flush=True)  # fmt: skip
        args.out.write_text(json.dumps(doc, indent=1))
    if args.transfer and len(models) > 1:
        from advx.text.transfer import transfer

        for recipe in args.recipes.split(","):
            table = {}
            for s_name in models:
                res = crafted[(s_name, recipe)]
                table[s_name] = {t: transfer(res, t_model) for t, t_model in models.items()}
                rates = {t: fmt(c["transfer_rate"], True) for t, c in table[s_name].items()}
                print(f"transfer {recipe} from {s_name}: {rates}", flush=True)
            doc.setdefault("transfer", {})[recipe] = table
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
