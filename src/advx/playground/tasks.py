"""What each view of the playground computes, as plain functions over library objects.

Each task takes the :class:`~advx.playground.zoo.Zoo`, the request's settings (already
parsed into a frozen value) and a :class:`~advx.playground.jobs.Monitor`, and returns the
JSON the page renders. Attacks are :func:`advx.attacks.create` objects run on
``WhiteBox``/``as_scores()``/``as_labels()`` targets; defenses are
:class:`~advx.defenses.RejectingClassifier` and :class:`~advx.defenses.AdaptivePGD`;
transfer is :func:`advx.evaluate.transfer.transfer_matrix`; text attacks are
:mod:`advx.text.recipes`. Nothing here is an attack of its own.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import advx.playground.images as images
from advx.errors import InputError
from advx.playground.jobs import Monitor
from advx.playground.zoo import Zoo, image_data

# attacks offered on the image tab: slug -> (label, access, extra settings)
IMAGE_ATTACKS: dict[str, tuple[str, str]] = {
    "fgsm": ("FGSM (white-box, one step)", "gradients"),
    "pgd": ("PGD (white-box)", "gradients"),
    "apgd-ce": ("APGD-CE (white-box)", "gradients"),
    "cw-l2": ("Carlini-Wagner L2 (white-box, minimal)", "gradients"),
    "square": ("Square (scores only)", "scores"),
    "hopskipjump": ("HopSkipJump (labels only)", "labels"),
}
MAX_STEPS = 200
MAX_QUERIES = 20000
MAX_EPS_255 = 64


@dataclass(frozen=True)
class AttackSettings:
    """What the page asks for (validated by :meth:`check`).

    Attributes:
        attack: a slug of :data:`IMAGE_ATTACKS`.
        eps_255: L-inf budget in 1/255 steps (CW ignores it: it minimises L2).
        steps: iterations of iterative attacks.
        max_queries: per-example budget of the black-box attacks.
        target: class index for a targeted attack, or None.
    """

    attack: str = "pgd"
    eps_255: int = 4
    steps: int = 10
    max_queries: int = 1000
    target: int | None = None

    def check(self) -> AttackSettings:
        """Raise :class:`InputError` on settings out of range."""
        if self.attack not in IMAGE_ATTACKS:
            raise InputError(
                f"unknown attack {self.attack!r}; choose one of {', '.join(IMAGE_ATTACKS)}"
            )
        if not 0 <= self.eps_255 <= MAX_EPS_255:
            raise InputError(f"eps must be 0..{MAX_EPS_255} (in /255), got {self.eps_255}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise InputError(f"steps must be 1..{MAX_STEPS}, got {self.steps}")
        if not 10 <= self.max_queries <= MAX_QUERIES:
            raise InputError(f"queries must be 10..{MAX_QUERIES}, got {self.max_queries}")
        return self

    @property
    def eps(self) -> float:
        """The budget in input units."""
        return self.eps_255 / 255.0

    def create(self) -> Any:
        """The configured attack object."""
        from advx.attacks import create

        a = self.attack
        if a == "fgsm":
            return create("fgsm", eps=self.eps)
        if a == "pgd":
            return create("pgd", eps=self.eps, steps=self.steps)
        if a == "apgd-ce":
            return create("apgd-ce", eps=self.eps, steps=self.steps)
        if a == "cw-l2":
            return create("cw-l2", steps=self.steps, binary_search_steps=4)
        if a == "square":
            return create("square", eps=self.eps, max_queries=self.max_queries)
        return create("hopskipjump", eps=self.eps, norm="linf", max_queries=self.max_queries)

    def expected_calls(self) -> int:
        """Roughly how many model calls the attack makes (for the progress bar)."""
        a = self.attack
        if a == "fgsm":
            return 2
        if a in ("pgd", "apgd-ce"):
            return self.steps + 2
        if a == "cw-l2":
            return 4 * self.steps + 2
        return self.max_queries + 2


def data_url(png: bytes) -> str:
    """A ``data:`` URL the page can show directly."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def top5(scores: Tensor, names: Sequence[str]) -> list[dict[str, Any]]:
    """The five most probable classes of one score vector ``(C,)``."""
    p, i = scores.float().topk(min(5, scores.numel()))
    return [
        {"index": int(c), "name": names[int(c)], "p": float(v)} for v, c in zip(p, i, strict=True)
    ]


def _target(model: Any, access: str, name: str) -> Any:
    from advx.defenses import RejectingClassifier
    from advx.targets import Target, WhiteBox

    t: Target
    if isinstance(model, tuple):  # (classifier, detector): the guarded system
        t = RejectingClassifier(model[0], model[1], name=name)
    elif isinstance(model, Target):
        t = model
    else:
        t = WhiteBox(model, name=name)
    return {"gradients": t, "scores": t.as_scores(), "labels": t.as_labels()}[access]


def _scores(target: Any, x: Tensor) -> Tensor:
    with target.attacking(), torch.no_grad():
        out: Tensor = target.scores(x)
        return out


def run_attack(
    zoo: Zoo, key: str, x: Tensor, settings: AttackSettings, monitor: Monitor
) -> dict[str, Any]:
    """The image tab: attack one image ``x`` ``(C, H, W)`` on model ``key``.

    The label attacked is the model's own answer on the original (an uploaded photo has
    no other). The adversarial example is put on the 8-bit grid, so the PNG the page
    offers is exactly the tensor whose prediction it shows; if that rounding changed the
    prediction the attack found, the result says so (``quantisation``).
    """
    settings.check()
    model = zoo.get(key, monitor.loading)
    full = _target(model, "gradients", key)
    names = list(full.class_names)
    x = x.unsqueeze(0)  # (1, C, H, W)
    if tuple(x.shape[1:]) != tuple(full.input_shape):
        raise InputError(f"the image is {tuple(x.shape[1:])}; {key} takes {full.input_shape}")
    access = IMAGE_ATTACKS[settings.attack][1]
    target = _target(model, access, key)
    monitor.restart_clock()
    monitor.expected = settings.expected_calls()
    monitor.report(0.0, f"running {settings.attack} on {key}")
    with monitor.watching(zoo.modules(key)):
        before = _scores(full, x)[0]
        y = before.argmax().view(1)
        tgt = None
        if settings.target is not None:
            if not 0 <= settings.target < full.num_classes:
                raise InputError(f"target class must be in 0..{full.num_classes - 1}")
            if settings.target == int(y):
                raise InputError(
                    f"the model already says {names[int(y)]!r}; pick another target class"
                )
            tgt = torch.tensor([settings.target])
        result = settings.create()(target, x, y, targets=tgt)
        q = images.quantise(result.x_adv)
        after = _scores(full, q)[0]
    png = images.to_png(q[0])
    if not torch.equal(images.from_png(png, q.shape[1]), q[0]):  # the download is exact
        raise RuntimeError("the PNG does not hold the adversarial tensor exactly")
    pred_float, pred_q = int(result.pred_adv[0]), int(after.argmax())
    goal = settings.target if settings.target is not None else None
    fooled = pred_q == goal if goal is not None else pred_q != int(y)
    delta = q[0] - x[0]
    pert, factor = images.amplified(delta)
    return {
        "model": key,
        "attack": settings.attack,
        "attack_label": IMAGE_ATTACKS[settings.attack][0],
        "eps_255": settings.eps_255,
        "targeted": goal is not None,
        "target": None if goal is None else {"index": goal, "name": names[goal]},
        "before": {"label": int(y), "name": names[int(y)], "top5": top5(before, names)},
        "after": {"label": pred_q, "name": names[pred_q], "top5": top5(after, names)},
        "fooled": bool(fooled),
        "status": ["succeeded", "failed", "skipped"][int(result.status[0])],
        "linf_255": float(delta.abs().max()) * 255.0,
        "l2": float(delta.norm()),
        "queries": int(result.queries[0]),
        "seconds": float(result.seconds),
        "quantisation": {
            "changed": pred_q != pred_float,
            "float_label": pred_float,
            "float_name": names[pred_float],
            "message": (
                "the 8-bit PNG gives the same prediction as the attack's float tensor"
                if pred_q == pred_float
                else f"re-quantising to 8 bits changes the prediction: the float tensor says "
                f"{names[pred_float]!r}, the 8-bit PNG says {names[pred_q]!r}"
            ),
        },
        "images": {
            "original": data_url(images.to_png(x[0])),
            "perturbation": data_url(images.to_png(pert)),
            "adversarial": data_url(png),
        },
        "factor": factor,
        "_blobs": {"adversarial.png": png, "original.png": images.to_png(x[0])},
        "_figure": {
            "before": before.tolist(),
            "after": after.tolist(),
            "names": names,
            "target": goal,
            "title": f"{key}: {settings.attack} at eps {settings.eps_255}/255",
        },
    }


def figure_png(blobs: dict[str, bytes], spec: dict[str, Any], channels: int) -> bytes:
    """The report's figure of an image-tab result (:func:`advx.report.figures.
    triptych_with_top5`, the code the HTML report uses), as PNG bytes."""
    import io

    from advx.report.figures import triptych_with_top5

    fig = triptych_with_top5(
        images.from_png(blobs["original.png"], channels),
        images.from_png(blobs["adversarial.png"], channels),
        torch.tensor(spec["before"]),
        torch.tensor(spec["after"]),
        spec["names"],
        target=spec["target"],
        title=spec["title"],
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def run_defense(
    zoo: Zoo, keys: dict[str, str], x: Tensor, settings: AttackSettings, monitor: Monitor
) -> dict[str, Any]:
    """The defense view: one example against the plain model, the adversarially trained
    one and the detector-guarded one (the attack crafted on the plain model, then an
    adaptive attack aware of the detector: :class:`~advx.defenses.AdaptivePGD` on
    ``RejectingClassifier(model, detector.bpda())``)."""
    from advx.defenses import AdaptivePGD, RejectingClassifier
    from advx.targets import WhiteBox

    settings.check()
    if IMAGE_ATTACKS[settings.attack][1] != "gradients":
        raise InputError("the defense view runs white-box attacks; pick FGSM, PGD, APGD or CW")
    plain = zoo.get(keys["plain"], monitor.loading)
    robust = zoo.get(keys["adversarial"], monitor.loading)
    base, det = zoo.get(keys["guarded"], monitor.loading)
    names = list(plain.class_names)
    x = x.unsqueeze(0)
    rows: list[dict[str, Any]] = []
    monitor.restart_clock()
    mods = [
        *zoo.modules(keys["plain"]),
        *zoo.modules(keys["adversarial"]),
        *zoo.modules(keys["guarded"]),
    ]
    with monitor.watching(mods):

        def attack_on(name: str, target: Any, attack: Any, x_in: Tensor) -> dict[str, Any]:
            clean = _scores(target, x_in)[0]
            y = clean.argmax().view(1)
            res = attack(target, x_in, y)
            xa = images.quantise(res.x_adv)
            adv = _scores(target, xa)[0]
            pa = int(adv.argmax())
            return {
                "model": name,
                "before": {"label": int(y), "name": names[int(y)], "p": float(clean.max())},
                "after": {"label": pa, "name": names[pa], "p": float(adv.max())},
                "fooled": pa != int(y),
                "rejected": False,
                "linf_255": float((xa - x_in).abs().max()) * 255,
                "image": data_url(images.to_png(xa[0])),
                "x_adv": xa,
            }

        monitor.report(0.3, f"attacking {keys['plain']}")
        r_plain = attack_on(
            keys["plain"], WhiteBox(plain, name=keys["plain"]), settings.create(), x
        )
        rows.append({**r_plain, "what": "plain model, attacked directly"})
        monitor.report(0.45, f"attacking {keys['adversarial']}")
        rows.append(
            {
                **attack_on(keys["adversarial"], WhiteBox(robust), settings.create(), x),
                "what": "adversarially trained model, attacked directly",
            }
        )
        # The guarded system's answers are decided by the real detector (its labels);
        # probabilities shown are the guarded model's, "rejected" has none.
        system = RejectingClassifier(base, det, name=keys["guarded"])
        tnames, reject = list(system.class_names), system.reject_label

        def guarded(x_in: Tensor, x_out: Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
            with system.attacking(), torch.no_grad():
                labels = system.labels(torch.cat([x_in, x_out]))
                probs = base(torch.cat([x_in, x_out])).softmax(1)
            sides = [
                {
                    "label": int(lab),
                    "name": tnames[int(lab)],
                    "p": None if int(lab) == reject else float(p[int(lab)]),
                }
                for lab, p in zip(labels, probs, strict=True)
            ]
            return sides[0], sides[1]

        monitor.report(0.6, "showing the plain model's example to the guarded model")
        y = int(r_plain["before"]["label"])
        before, after = guarded(x, r_plain["x_adv"])
        rows.append(
            {
                "model": keys["guarded"],
                "what": "detector-guarded model, shown the plain model's example",
                "before": before,
                "after": after,
                "fooled": after["label"] not in (y, reject),
                "rejected": after["label"] == reject,
                "linf_255": r_plain["linf_255"],
                "image": r_plain["image"],
            }
        )
        steps = max(settings.steps, 20)
        what = f"detector-guarded model, adaptive PGD ({steps} steps) aware of the detector"
        if before["label"] == reject:
            what += (
                " (nothing to do: the detector already rejects the clean image, a false positive)"
            )
            x_ad = x
        else:
            monitor.report(0.75, "adaptive attack on the guarded model")
            # differentiates through the BPDA copy of the detector; judged by the real one
            adaptive = RejectingClassifier(base, det.bpda(), name=keys["guarded"])
            res: Any = AdaptivePGD(eps=settings.eps, steps=steps)(adaptive, x, torch.tensor([y]))
            x_ad = images.quantise(res.x_adv)  # one eps: an AttackResult
        before, after = guarded(x, x_ad)
        rows.append(
            {
                "model": keys["guarded"],
                "what": what,
                "before": before,
                "after": after,
                "fooled": after["label"] not in (y, reject),
                "rejected": after["label"] == reject,
                "linf_255": float((x_ad - x).abs().max()) * 255,
                "image": data_url(images.to_png(x_ad[0])),
            }
        )
    for r in rows:
        r.pop("x_adv", None)
    return {
        "eps_255": settings.eps_255,
        "attack": settings.attack,
        "original": data_url(images.to_png(x[0])),
        "rows": rows,
        "class_names": names,
    }


def run_text(
    zoo: Zoo, key: str, text: str, recipe: str, max_queries: int, monitor: Monitor
) -> dict[str, Any]:
    """The text tab: one sentence through a recipe of :mod:`advx.text.recipes`."""
    from advx.text import recipes
    from advx.text.result import word_diff

    text = text.strip()
    if not text:
        raise InputError("type a sentence first")
    if len(text) > 1000:
        raise InputError(f"the text has {len(text)} characters; the limit is 1000")
    if not 10 <= max_queries <= MAX_QUERIES:
        raise InputError(f"queries must be 10..{MAX_QUERIES}, got {max_queries}")
    model = zoo.get(key, monitor.loading)
    attack = recipes.create(recipe, max_queries=max_queries, seed=0)
    monitor.restart_clock()
    monitor.expected = max_queries
    monitor.report(0.05, f"running {recipe} on {key}")
    with monitor.watching(zoo.modules(key)), torch.no_grad():
        probs = model.predict_proba([text])
        y = int(torch.as_tensor(probs)[0].argmax())
        res = attack(model, [text], [y])[0]
    names = list(model.class_names)
    segs = [
        {"old": s.old, "new": s.new, "changed": s.changed}
        for s in word_diff(res.original, res.adversarial)
    ]
    return {
        "model": key,
        "recipe": recipe,
        "original": res.original,
        "adversarial": res.adversarial,
        "segments": segs,
        "before": {"label": res.pred_clean, "name": names[res.pred_clean], "p": res.conf_clean},
        "after": {"label": res.pred_adv, "name": names[res.pred_adv], "p": res.conf_adv},
        "status": res.status.name.lower(),
        "fooled": res.succeeded,
        "words_changed": res.words_changed,
        "num_words": res.num_words,
        "queries": res.queries,
        "seconds": res.seconds,
    }


def evaluation_data(zoo: Zoo, key: str, n: int) -> tuple[Tensor, Tensor]:
    """``n`` labelled examples for the dataset of model ``key`` (test split; the bundled
    photos for ImageNet, labelled by their ImageNet class)."""
    ds = image_data(zoo.entry(key, "image").dataset)
    return ds.x[:n], ds.y[:n]


def evaluation_size(zoo: Zoo, key: str) -> int:
    """How many examples :func:`evaluation_data` has for model ``key``."""
    return len(image_data(zoo.entry(key, "image").dataset).y)


def run_transfer(
    zoo: Zoo, source: str, x: Tensor, settings: AttackSettings, n: int, monitor: Monitor
) -> dict[str, Any]:
    """The transfer view: craft on ``source`` (white-box), show the example to every other
    model of the same input shape, and measure the transfer rate over ``n`` examples with
    :func:`~advx.evaluate.transfer.transfer_matrix`."""
    from advx.evaluate.transfer import transfer_matrix
    from advx.targets import WhiteBox

    settings.check()
    if IMAGE_ATTACKS[settings.attack][1] != "gradients" or settings.attack == "cw-l2":
        raise InputError("transfer crafts with an eps-bounded white-box attack: FGSM, PGD or APGD")
    src = zoo.classifier(source, monitor.loading)
    shape = tuple(src.input_shape)
    others = []
    dataset = zoo.entry(source, "image").dataset
    for e in zoo.of("image"):
        if e.key == source or e.dataset != dataset:
            continue
        m = zoo.classifier(e.key, monitor.loading)
        if m.num_classes == src.num_classes:
            others.append(e.key)
    if not others:
        raise InputError(f"no other model has the {src.num_classes} classes of {source}")
    monitor.restart_clock()
    x = x.unsqueeze(0)
    mods = [m for k in [source, *others] for m in zoo.modules(k)]
    with monitor.watching(mods):
        monitor.report(0.1, f"crafting on {source}")
        n = min(n, evaluation_size(zoo, source))
        white = WhiteBox(src, name=source)
        y = _scores(white, x)[0].argmax().view(1)
        res = settings.create()(white, x, y)
        xa = images.quantise(res.x_adv)
        names = list(src.class_names)
        per: list[dict[str, Any]] = []
        for k in [source, *others]:
            t = _target(zoo.get(k), "gradients", k)
            tn = list(t.class_names)
            xs, xas = x, xa
            resized = tuple(t.input_shape) != shape  # e.g. lite1 reads 240x240
            if resized:
                xs = images.fit_to(x[0], t.input_shape).unsqueeze(0)
                xas = images.fit_to(xa[0], t.input_shape).unsqueeze(0)
            with t.attacking():
                c, a = int(t.labels(xs)[0]), int(t.labels(xas)[0])
            per.append(
                {
                    "model": k,
                    "before": tn[c],
                    "after": tn[a],
                    "fooled": a != c and tn[a] != "rejected",
                    "rejected": tn[a] == "rejected",
                    "source": k == source,
                    "resized": resized,
                }
            )
        # the rate counts label changes, so a detector's rejection would count as
        # "fooled": guarded systems get their verdict per example above, not a rate
        same = [
            k
            for k in others
            if tuple(zoo.classifier(k).input_shape) == shape and zoo.entry(k).role != "guarded"
        ]
        rates: dict[str, float | None] = {}
        source_success = None
        if same:
            monitor.report(0.4, f"transfer rate over {n} examples")
            attack_settings = {"steps": settings.steps} if settings.attack != "fgsm" else {}
            matrix = transfer_matrix(
                {source: src},
                {k: _target(zoo.get(k), "gradients", k) for k in same},
                evaluation_data(zoo, source, n),
                eps=settings.eps,
                attack=settings.attack,
                settings=attack_settings,
                progress=lambda done, total, _d: monitor.report(0.4 + 0.6 * done / max(total, 1)),
            )
            rates = {k: matrix.rate(source, k) for k in same}
            source_success = matrix.source_success[0]
    return {
        "source": source,
        "eps_255": settings.eps_255,
        "attack": settings.attack,
        "label": names[int(y)],
        "images": {
            "original": data_url(images.to_png(x[0])),
            "adversarial": data_url(images.to_png(xa[0])),
        },
        "models": per,
        "rates": rates,
        "source_success": source_success,
        "n": n,
    }


def _pca2(feats: Tensor, other: Tensor) -> tuple[Tensor, Tensor]:
    """Project both sets on the first two principal axes of ``feats``."""
    mean = feats.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(feats - mean, full_matrices=False)
    axes = v[:2].T  # (D, 2)
    return (feats - mean) @ axes, (other - mean) @ axes


def run_robustness(
    zoo: Zoo, keys: Sequence[str], attack: str, max_eps_255: int, n: int, monitor: Monitor
) -> dict[str, Any]:
    """The robustness view: accuracy vs eps for each model (one eps sweep each), and the
    penultimate-layer features of clean and adversarial examples of the first model,
    projected to 2-D (PCA of the clean features)."""
    from advx.attacks import create
    from advx.defenses.features import logits_and_features
    from advx.metrics import robust_accuracy

    if not keys:
        raise InputError("pick at least one model")
    if attack not in ("fgsm", "pgd"):
        raise InputError("the robustness view sweeps FGSM or PGD")
    if not 1 <= max_eps_255 <= MAX_EPS_255:
        raise InputError(f"max eps must be 1..{MAX_EPS_255} (/255)")
    if not 10 <= n <= 1000:
        raise InputError("examples must be 10..1000")
    first = zoo.entry(keys[0], "image")
    for k in keys:
        if zoo.entry(k, "image").dataset != first.dataset:
            raise InputError("the models of one sweep must share a dataset")
    for k in keys:
        zoo.get(k, monitor.loading)
    monitor.restart_clock()
    x, y = evaluation_data(zoo, keys[0], n)
    grid = sorted({round(max_eps_255 * i / 5) for i in range(6)})
    eps = [e / 255.0 for e in grid]
    curves = []
    mods = [m for k in keys for m in zoo.modules(k)]
    sweep_last = None
    for i, k in enumerate(keys):
        monitor.report(0.8 * i / len(keys), f"sweeping eps on {k}")
        model = zoo.get(k)
        target = _target(model, "gradients", k)
        a = create("fgsm", eps=eps) if attack == "fgsm" else create("pgd", eps=eps, steps=10)
        with monitor.watching(mods):
            sweep = a(target, x, y)
        curves.append({"model": k, "accuracy": [robust_accuracy(r) for r in sweep]})
        if i == 0:
            sweep_last = sweep
    monitor.report(0.9, "projecting features")
    base = zoo.classifier(keys[0])
    if sweep_last is None:  # pragma: no cover - keys is non-empty
        raise InputError("nothing swept")
    r = sweep_last[len(eps) - 1]
    with torch.no_grad(), base.frozen_eval():
        _, fc = logits_and_features(base, x, "penultimate")
        _, fa = logits_and_features(base, r.x_adv, "penultimate")
    pc, pa = _pca2(fc.flatten(1).float(), fa.flatten(1).float())
    names = list(base.class_names)
    points = [
        {
            "clean": [float(pc[j, 0]), float(pc[j, 1])],
            "adv": [float(pa[j, 0]), float(pa[j, 1])],
            "y": int(y[j]),
            "pred_clean": int(r.pred_clean[j]),
            "pred_adv": int(r.pred_adv[j]),
        }
        for j in range(x.shape[0])
    ]
    return {
        "eps_255": grid,
        "curves": curves,
        "attack": attack,
        "n": int(x.shape[0]),
        "projection": {
            "model": keys[0],
            "eps_255": grid[-1],
            "points": points,
            "class_names": names,
        },
    }


__all__ = [
    "IMAGE_ATTACKS",
    "AttackSettings",
    "run_attack",
    "run_defense",
    "run_robustness",
    "run_text",
    "run_transfer",
    "figure_png",
    "top5",
]
