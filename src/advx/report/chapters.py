"""How each chapter of the demo reads in the report: one builder per chapter record.

Each builder turns a chapter's saved record (``chNN.json``, written by the chapter with
:func:`advx.report.story.save_chapter`) into a :class:`~advx.report.sections.Section`: the
sentence of what the chapter shows, its tables with human column names, and its figures,
drawn from the record's per-example values by the pure functions of
:mod:`advx.report.plots`. A builder never runs a model or an attack. Imported by
:func:`advx.report.story.story_sections`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advx.errors import CheckpointError
from advx.report.sections import (
    Diff,
    Options,
    Picture,
    Section,
    Table,
    chapter,
    norm_name,
    num,
    pct,
    picture_file,
)

if TYPE_CHECKING:
    from advx.report.sections import Contents


@chapter("ch01")
def _train(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    arch, data = rec.get("arch", "model"), rec.get("dataset", "?")
    s = Section(
        "ch01",
        "1. Train a classifier",
        f"A {arch} trained on {data} for {rec.get('epochs', '?')} epochs classifies "
        f"{pct(rec.get('test_accuracy'))} of the {rec.get('n_test', '?')} test images "
        "correctly. It is the model the next chapters attack.",
    )
    s.tables.append(
        Table(
            ["Model", "Data", "Epochs", "Parameters", "Test images", "Test accuracy"],
            [
                [
                    str(arch),
                    str(data),
                    num(rec.get("epochs")),
                    f"{rec.get('parameters', 0):,}",
                    num(rec.get("n_test")),
                    pct(rec.get("test_accuracy"), 2),
                ]
            ],
        )
    )
    pic = picture_file(root, "ch01_grid.png", "Test images and what the model predicts",
                        "a grid of test images, each titled with the predicted class", used)  # fmt: skip
    if pic:
        pic.caption = "Titles give the prediction; a mistake shows the true class after ✗."
        s.pictures.append(pic)
    return s


def _photo_lede(photo: Mapping[str, Any]) -> str:
    """The ImageNet moment in a sentence, from chapter 2's ``photo`` record."""
    rows = photo.get("photos") or {}
    if not rows:
        return ""
    name, first = next(iter(rows.items()))
    target = photo.get("target", "ostrich")
    need = first.get("eps_needed_255")
    moment = (
        f"A real photo ({name}) that {photo.get('model', 'the ImageNet model')} calls "
        f'"{first.get("top1", "?")}" becomes "{target}" after a change of at most '
        f"{num(need)}/255 per pixel. "
        if need is not None
        else f'The {name} photo did not reach "{target}" within the chapter\'s budgets. '
    )
    if photo.get("n_photos", 0) > 1:
        moment += (
            f"{photo.get('reached_at_4_255', '?')} of {photo['n_photos']} photos reach "
            f'"{target}" at 4/255. '
        )
    return moment


@chapter("ch02")
def _whitebox(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    eps = rec.get("eps")
    runs = rec.get("runs") or []
    by = {r.get("key"): r for r in runs}
    pair = rec.get("pair") or ["?", "?"]
    pgd = by.get("pgd", {})
    tgt = by.get("pgd-targeted", {})
    photo = rec.get("photo") or {}
    lede = _photo_lede(photo) + (
        f"On chapter 1's model, FGSM flips predictions with a change of at most {num(eps)} per "
        f'pixel (on a 0..1 scale); targeted, it turns "{pair[0]}" into "{pair[1]}". PGD '
        f"leaves robust accuracy at {pct(pgd.get('robust_accuracy'))} and reaches "
        f'"{pair[1]}" from "{pair[0]}" {pct(tgt.get("success_rate"), 0)} of the time.'
    )
    title = "2. White-box attacks: " + (
        f"a photo becomes an {photo.get('target', 'ostrich')}; FGSM and PGD"
        if photo.get("photos")
        else "FGSM and PGD, a perturbation too small to see"
    )
    s = Section("ch02", title, lede)
    rows = photo.get("photos") or {}
    if rows:
        s.tables.append(
            Table(
                ["Photo", "True label", "Model says", f"Eps needed to reach {photo.get('target')}"],
                [
                    [
                        str(k),
                        str(r.get("label")),
                        f"{r.get('top1')} ({pct(r.get('top1_prob'), 0)})",
                        "not reached"
                        if r.get("eps_needed_255") is None
                        else f"{num(r.get('eps_needed_255'))}/255",
                    ]
                    for k, r in rows.items()
                ],
                caption=f"{photo.get('model', '')} on real photos, targeted PGD",
            )
        )
    for name in [Path(str(f)).name for f in photo.get("figures", [])] + [
        "ch02_imagenet_ostrich.png"
    ]:
        if (root / name).resolve() in used:
            continue
        pic = picture_file(
            root,
            name,
            f"A photo becomes an {photo.get('target', 'ostrich')}",
            "original photo | perturbation (amplified) | adversarial photo, with the top-5 "
            "probabilities before and after",
            used,
        )
        if pic:
            pic.caption = "The perturbation is amplified for display; its factor and size are "
            pic.caption += "written over the middle panel. Red: the target class."
            s.pictures.append(pic)
    if runs:
        s.tables.append(
            Table(
                [
                    "Attack",
                    "Goal",
                    "Images",
                    "Success",
                    "Accuracy after the attack",
                    "Gradient passes per image",
                    "Seconds",
                ],
                [
                    [
                        str(r.get("attack", r.get("key", "?"))),
                        str(r.get("goal", "")),
                        num(r.get("n")),
                        pct(r.get("success_rate")),
                        pct(r.get("robust_accuracy")) if r.get("goal") == "untargeted" else "—",
                        num(r.get("mean_queries"), ".1f"),
                        num(r.get("seconds"), ".2f"),
                    ]
                    for r in runs
                ],
                caption=f"{rec.get('dataset', '')} test images, {norm_name('linf')} eps={num(eps)}; "
                f"clean accuracy {pct(rec.get('clean_accuracy'))}",
            )
        )
    for name, title in (
        ("ch02_fgsm.png", "FGSM, untargeted"),
        ("ch02_fgsm-targeted.png", f"FGSM, targeted: {pair[0]} → {pair[1]}"),
        ("ch02_pgd.png", "PGD, untargeted"),
    ):
        pic = picture_file(root, name, title, f"{title}: original | perturbation (amplified) | "
                            "adversarial, with predicted classes", used)  # fmt: skip
        if pic:
            s.pictures.append(pic)
    for p in sorted(root.glob("ch02*.png")):  # anything else the chapter drew
        if p.resolve() not in used:
            used.add(p.resolve())
            s.pictures.append(Picture(p.stem.replace("_", " "), p.read_bytes(), p.stem))
    return s


@chapter("ch03")
def _strong(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.report.plots import accuracy_at_eps, accuracy_vs_eps

    runs = rec.get("runs") or []
    minimal = rec.get("minimal") or {}
    apgd: dict[str, Any] = next((r for r in runs if r.get("budget") != "none"), {})
    meds = {
        k: statistics.median(d for d, ok in zip(v["distance"], v["succeeded"], strict=True) if ok)
        for k, v in minimal.items()
        if any(v.get("succeeded", []))
    }
    small = min(meds.values()) if meds else None
    flip = min(
        (r.get("success_rate") or 0.0 for r in runs if r.get("budget") == "none"), default=None
    )
    s = Section(
        "ch03",
        "3. Stronger white-box attacks drive robust accuracy to about zero",
        f"APGD-CE leaves {pct(apgd.get('robust_accuracy'))} of {rec.get('n', '?')} test images "
        f"correctly classified at {norm_name('linf')} eps={num(rec.get('eps'))}; with no budget "
        f"at all, the minimal attacks (DeepFool, Carlini-Wagner) flip at least {pct(flip, 0)} "
        "of the images they attack, and the curve shows how small a perturbation suffices"
        + (f" (median {norm_name('l2')} {num(small)})." if small is not None else "."),
    )
    if runs:
        s.tables.append(
            Table(
                [
                    "Attack",
                    "Budget",
                    "Success",
                    "Accuracy after the attack",
                    "Median perturbation",
                    "Seconds",
                ],
                [
                    [
                        str(r.get("attack")),
                        str(r.get("budget")),
                        pct(r.get("success_rate")),
                        pct(r.get("robust_accuracy")),
                        f"{num(r.get('median_distance'))} ({norm_name(r.get('norm'))})"
                        if r.get("median_distance") is not None
                        else "—",
                        num(r.get("seconds"), ".1f"),
                    ]
                    for r in runs
                ],
            )
        )
    curves = {}
    top = max((max(v["distance"]) for v in minimal.values() if v.get("distance")), default=0.0)
    if top > 0:
        grid = [top * i / 40 for i in range(41)]
        for k, v in minimal.items():
            curves[f"{k} ({norm_name(v.get('norm'))})"] = (
                grid,
                accuracy_at_eps(v["distance"], v["succeeded"], v["correct"], grid),
            )
    if curves:
        s.pictures.append(
            Picture(
                "Robust accuracy vs perturbation size",
                accuracy_vs_eps(
                    curves,
                    xlabel="perturbation size (L2)",
                    title="accuracy when the attacker may change the image by up to eps",
                ),
                "robust accuracy falling to zero as the allowed L2 perturbation grows, "
                "one line per minimal attack",
                caption="Read from the minimal attacks' per-example distances: an image counts "
                "as robust at eps when the attack needed more than eps to flip it.",
            )
        )
    return s


@chapter("ch04")
def _transfer(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    tdir = (root / str(rec.get("transfer_dir", "transfer"))).resolve()
    t = next((t for t in c.transfers if t.path.resolve() == tdir), None)
    if t is None:
        return Section("ch04", "4. Transfer: examples crafted on one model fool others",
                       f"No transfer matrix found in {tdir}.")  # fmt: skip
    res = t.result
    off = [v for i, row in enumerate(res.matrix) for j, v in enumerate(row)
           if v is not None and res.sources[i] != res.targets[j]]  # fmt: skip
    agree = sum(1 for f in t.findings if f["holds"])
    checked = sum(1 for f in t.findings if f["holds"] is not None)
    s = Section(
        "ch04",
        "4. Transfer: examples crafted on one model fool others",
        f"{res.config['attack'].upper()} examples (eps={res.config['eps']:g}) crafted on each of "
        f"{len(res.sources)} models — neural and not — fool the other models on average "
        f"{pct(sum(off) / len(off) if off else None)} of the time, without ever touching them."
        + (
            f" {agree} of {checked} findings of Papernot et al. (2016) hold here."
            if checked
            else ""
        ),
    )
    rows = []
    for i, src in enumerate(res.sources):
        others = [(v, res.targets[j]) for j, v in enumerate(res.matrix[i])
                  if v is not None and res.targets[j] != src]  # fmt: skip
        best = max(others, default=None)
        rows.append(
            [
                src,
                pct(res.clean_accuracy.get(src)),
                pct(res.source_success[i]),
                pct(sum(v for v, _ in others) / len(others) if others else None),
                f"{best[1]} ({pct(best[0], 0)})" if best else "—",
            ]
        )
    s.tables.append(
        Table(
            [
                "Crafted on",
                "Clean accuracy",
                "Fools itself (white-box)",
                "Fools the other models (mean)",
                "Fools most",
            ],
            rows,
            caption="each model's examples, shown to the others (the full matrix is below)",
        )
    )
    s.transfer = t
    return s


@chapter("ch05")
def _blackbox(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.report.plots import success_by_queries, success_vs_queries

    runs = rec.get("runs") or []
    budget = rec.get("budget")
    sq: dict[str, Any] = next((r for r in runs if r.get("sees") == "probabilities"), {})
    hsj: dict[str, Any] = next((r for r in runs if r.get("sees") == "labels"), {})
    s = Section(
        "ch05",
        "5. Black-box: only the model's outputs, over HTTP, under a query budget",
        f"The model sits behind an HTTP endpoint (Open Inference Protocol). Seeing only "
        f"probabilities, Square fools it on {pct(sq.get('success_rate'), 0)} of the images "
        f"with {num(sq.get('mean_queries'), '.0f')} queries on average; seeing only labels, "
        f"HopSkipJump fools {pct(hsj.get('success_rate'), 0)} within "
        f"{norm_name(hsj.get('norm'))} {num(hsj.get('eps'))}. Budget: {num(budget)} queries per "
        "image.",
    )
    if runs:
        s.tables.append(
            Table(
                [
                    "Attack",
                    "Sees",
                    "Budget",
                    "Success",
                    "Mean queries",
                    "Median perturbation",
                    "Seconds",
                ],
                [
                    [
                        str(r.get("attack")),
                        str(r.get("sees")),
                        f"{norm_name(r.get('norm'))} {num(r.get('eps'))}"
                        if r.get("eps") is not None
                        else "minimal",
                        pct(r.get("success_rate")),
                        num(r.get("mean_queries"), ".0f"),
                        f"{num(r.get('median_distance'))} ({norm_name(r.get('norm'))})"
                        if r.get("median_distance") is not None
                        else "—",
                        num(r.get("seconds"), ".1f"),
                    ]
                    for r in runs
                ],
                caption=f"{rec.get('n', '?')} test images, {num(budget)} queries per image",
            )
        )
    curves = {
        str(r.get("attack")): success_by_queries(r["queries"], r["succeeded"], r["attacked"])
        for r in runs
        if r.get("queries")
    }
    if curves:
        s.pictures.append(
            Picture(
                "Success vs queries",
                success_vs_queries(
                    curves, budget=budget, title="share of images fooled within a query budget"
                ),
                "images fooled (%) as the number of queries per image grows, one step curve "
                "per black-box attack",
                caption="Each image stops at its first success, so its query count is the "
                "budget it needed.",
            )
        )
    return s


def _diff_md(d: Mapping[str, Any], names: Sequence[str]) -> str:
    from advx.text.result import TextAttackResult

    r = TextAttackResult.from_dict(dict(d))
    parts = []
    for seg in r.diff():
        parts.append(f"~~{seg.old.strip()}~~ **{seg.new.strip()}**" if seg.changed else seg.old)

    def lab(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    return (
        f"> {''.join(parts).strip()}\n>\n> {lab(r.pred_clean)} ({r.conf_clean:.0%}) → "
        f"{lab(r.pred_adv)} ({r.conf_adv:.0%}); {r.words_changed} word(s) changed, "
        f"{r.queries} queries"
    )


@chapter("ch06")
def _text(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.text.result import TextAttackResult, TextAttackResults, diff_html

    summ = rec.get("summary") or {}
    names = list(rec.get("class_names") or [])
    shown = [rec["shown"]] if rec.get("shown") else []
    first = (
        f"The tweet below, about self-driving cars, flips with {shown[0]['words_changed']} "
        "misspelled word(s). "
        if shown and "words_changed" in shown[0]
        else ""
    )
    s = Section(
        "ch06",
        "6. Text: a few character edits flip a sentiment classifier",
        f"{first}{rec.get('recipe', 'DeepWordBug')} swaps and drops characters until the "
        f"{rec.get('arch')} sentiment model changes its mind: it succeeds on "
        f"{pct(summ.get('success_rate'), 0)} of {summ.get('n', '?')} test tweets, editing "
        f"{num(summ.get('mean_words_changed_pct'), '.0f')}% of the words on average.",
    )
    s.tables.append(
        Table(
            [
                "Recipe",
                "Tweets",
                "Accuracy before",
                "Accuracy after",
                "Success",
                "Words changed (mean)",
                "Queries per tweet",
            ],
            [
                [
                    str(rec.get("recipe")),
                    num(summ.get("n")),
                    pct(summ.get("clean_accuracy")),
                    pct(summ.get("robust_accuracy")),
                    pct(summ.get("success_rate")),
                    f"{num(summ.get('mean_words_changed_pct'), '.1f')}%",
                    num(summ.get("mean_queries"), ".0f"),
                ]
            ],
            caption=f"{rec.get('arch')} model on {rec.get('dataset')}",
        )
    )
    more: list[dict[str, Any]] = []
    rf = root / str(rec.get("results_file", "ch06-results.json"))
    if rf.is_file():
        try:
            won = [r for r in TextAttackResults.load(rf) if r.succeeded]
            more = [r.to_dict() for r in sorted(won, key=lambda r: r.words_changed)]  # fewest first
        except CheckpointError as e:
            s.notes.append(str(e))
    for d in (shown + [m for m in more if m not in shown])[:6]:
        r = TextAttackResult.from_dict(dict(d))
        s.diffs.append(Diff(diff_html(r, names), _diff_md(d, names)))
    if shown:
        s.notes.append("The first example is a negative tweet about self-driving cars.")
    return s


@chapter("ch07")
def _detect(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.report.plots import roc_figure

    na, ad = rec.get("non_adaptive") or {}, rec.get("adaptive") or {}
    atk = rec.get("attack") or {}
    steps = (atk.get("non_adaptive") or {}).get("steps", "?")
    asteps = (atk.get("adaptive") or {}).get("steps", "?")
    s = Section(
        "ch07",
        "7. Reactive defence: a detector, and the adaptive attack that walks past it",
        f"A {rec.get('kind', '')} detector flags {pct(na.get('detection_rate'))} of the PGD "
        f"examples that fool the model, at {pct(rec.get('clean_false_positive_rate'))} false "
        f"alarms on clean images. An attacker who knows it is there gets only "
        f"{pct(ad.get('detection_rate'))} flagged, and the defended system's accuracy under "
        f"attack falls from {pct(na.get('defended_accuracy'))} to "
        f"{pct(ad.get('defended_accuracy'))}.",
    )
    rows = [
        [
            "clean",
            "—",
            f"{pct(rec.get('clean_false_positive_rate'))} (false alarms)",
            pct(rec.get("defended_clean_accuracy")),
        ],
        [
            f"PGD-{steps} on the bare model",
            pct(na.get("fooled_model")),
            pct(na.get("detection_rate")),
            pct(na.get("defended_accuracy")),
        ],
    ]
    if ad:
        rows.append([f"adaptive PGD-{asteps} (knows the detector)", pct(ad.get("fooled_model")),
                     pct(ad.get("detection_rate")), pct(ad.get("defended_accuracy"))])  # fmt: skip
    s.tables.append(
        Table(
            [
                "Inputs",
                "Fool the bare model",
                "Flagged by the detector",
                "Accuracy of the defended system",
            ],
            rows,  # fmt: skip
            caption=f"{rec.get('n', '?')} test images of {rec.get('dataset', '')}, "
            f"{norm_name('linf')} eps={num(rec.get('eps'))}; a rejection counts as correct",
        ),
    )
    cost = rec.get("cost") or {}
    if cost:
        s.notes.append(
            f"What the detector costs: {cost.get('detector_parameters', 0):,} more parameters "
            f"and {cost.get('detector_buffers', 0):,} stored statistics (the model has "
            f"{cost.get('model_parameters', 0):,}), {num(cost.get('latency_ratio'), '.1f')}× "
            "the latency per batch."
        )
    sc = rec.get("scores") or {}
    if sc.get("clean") and (sc.get("non_adaptive") or sc.get("adaptive")):
        pos = {f"PGD-{steps} on the bare model": sc.get("non_adaptive") or [],
               f"adaptive PGD-{asteps}": sc.get("adaptive") or []}  # fmt: skip
        s.pictures.append(
            Picture(
                "The detector's ROC, before and after the adaptive attack",
                roc_figure(
                    sc["clean"],
                    pos,
                    threshold=rec.get("threshold"),
                    title="detector scores: clean vs adversarial inputs",
                ),
                "ROC curves: against plain PGD the curve hugs the top left corner; against "
                "the adaptive attack it falls towards the diagonal",
                caption="Dots: the detector's operating threshold (chosen for 5% false "
                "alarms). Adversarial inputs: those that fool the bare model.",
            )
        )
    return s


@chapter("ch08")
def _advtrain(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.report.plots import accuracy_vs_eps, training_curves

    models = rec.get("models") or {}
    std, adv = models.get("standard", {}), models.get("adversarial", {})
    eps = rec.get("eps")
    delta = None
    if std.get("clean") is not None and adv.get("clean") is not None:
        delta = 100 * (adv["clean"] - std["clean"])
    s = Section(
        "ch08",
        "8. Proactive defence: adversarial training",
        f"Training on {rec.get('adv', '').upper()} examples (eps={num(eps)}) lifts accuracy under "
        f"PGD-20 from {pct(std.get('pgd20'))} to {pct(adv.get('pgd20'))}; clean accuracy "
        f"changes by {num(delta, '+.2f')} points ({rec.get('verdict', 'measured')}).",
    )
    s.tables.append(
        Table(
            ["Model", "Clean accuracy", f"Accuracy under PGD-20 at eps={num(eps)}"],
            [
                [str(m.get("label", k)), pct(m.get("clean"), 2), pct(m.get("pgd20"))]
                for k, m in models.items()
            ],
            caption=f"{rec.get('arch')} on {rec.get('dataset')}; clean accuracy on the whole test "
            f"split, PGD-20 on {rec.get('n', '?')} test images",
        )
    )
    checks = rec.get("checks") or []
    if checks:
        s.pictures.append(
            Picture(
                "Clean and robust accuracy across adversarial-training epochs",
                training_curves(
                    [int(ch["epoch"]) for ch in checks],
                    {
                        "adversarial: clean": [ch["clean_accuracy"] for ch in checks],
                        "adversarial: under PGD-10": [ch["pgd_accuracy"] for ch in checks],
                    },
                    reference={
                        "standard: clean": std.get("clean"),
                        "standard: under PGD-20": std.get("pgd20"),
                    }
                    if std.get("clean") is not None
                    else None,
                    title="adversarial training, epoch by epoch",
                ),
                "line chart: the adversarially trained model's clean and PGD accuracy per "
                "epoch, with the standard model's as dashed lines",
                caption="Per-epoch values: held-out training images checked at each epoch's end "
                "(the overfit guard); dashed: the standard model on the test images.",
            )
        )
    sweep = rec.get("sweep") or {}
    if sweep.get("eps") and sweep.get("accuracy"):
        s.pictures.append(
            Picture(
                "Robust accuracy vs eps, both models",
                accuracy_vs_eps(
                    {k: (sweep["eps"], v) for k, v in sweep["accuracy"].items()},
                    xlabel="eps (L∞)",
                    marked=eps,
                    title="accuracy under PGD-20",
                ),
                "robust accuracy against eps for the standard and the adversarially trained "
                "model on one plot",
            )
        )
    return s
