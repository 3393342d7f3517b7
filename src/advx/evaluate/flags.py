"""Red-flag checks: signs that a robustness number is not to be trusted.

An evaluation can report high robust accuracy for the wrong reason: the attacks failed,
not the model resisted (Athalye, Carlini & Wagner, ICML 2018, "Obfuscated Gradients Give
a False Sense of Security"; Carlini et al. 2019, "On Evaluating Adversarial Robustness";
Croce & Hein 2020 ship similar checks with AutoAttack). Each check below has a written
explanation in ``docs/FLAGS.md``; the short form is :data:`FLAG_INFO`.

Two kinds of checks:

* *probe* checks query the model on a small probe batch (:func:`probe`): randomness,
  probabilities instead of logits, zero/NaN gradients, more steps helping less, an
  unbounded attack that does not reach ~100%, and (when the suite has no black-box step)
  a random-search probe;
* *record* checks are pure functions of the saved results (:func:`decide`): robust
  accuracy rising with eps, black-box steps breaking what white-box steps could not.

:func:`probe` returns raw measurements (stored in the results file); :func:`decide` turns
measurements into flags with the thresholds below, so a report can show both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from advx.targets import Access, Target

#: id -> (title, one-paragraph explanation). The long form is docs/FLAGS.md#<id>.
FLAG_INFO: dict[str, tuple[str, str]] = {
    "randomised": (
        "Model is randomised",
        "Two identical calls on the same inputs returned different outputs (in eval mode). "
        "Attacks then optimise against noise and report robustness that an attacker "
        "averaging over the randomness (EOT, Athalye et al. 2018) would not see. Evaluate "
        "with Expectation over Transformation or make the model deterministic.",
    ),
    "probabilities": (
        "Output looks like probabilities, not logits",
        "Every output row is non-negative and sums to 1, so the model ends with a softmax. "
        "Cross-entropy on probabilities saturates and its gradients vanish, so gradient "
        "attacks under-perform (Carlini & Wagner 2017). Remove the final softmax for "
        "evaluation and attack the logits.",
    ),
    "zero-gradients": (
        "Zero or NaN input gradients",
        "The loss gradient with respect to the input is exactly zero or not finite on many "
        "examples: gradient attacks cannot move. Typical causes are quantisation/rounding, "
        "argmax or thresholds inside the model, or saturated softmax outputs (gradient "
        "shattering, Athalye et al. 2018). Use BPDA or a black-box attack.",
    ),
    "more-steps-worse": (
        "Robust accuracy does not fall with more steps",
        "PGD with five times the steps left more examples robust than the short run. A "
        "working first-order attack only gets stronger with more iterations; if it does "
        "not, the loss surface is obfuscated or the model is random.",
    ),
    "eps-not-monotone": (
        "Robust accuracy does not fall as eps grows",
        "A larger budget contains every perturbation of a smaller one, so robust accuracy "
        "can only fall as eps grows. Here it rose: the attacks fail at large eps on examples "
        "they break at small eps (overshooting, masked gradients, randomness).",
    ),
    "unbounded-fails": (
        "Unbounded attack does not reach ~100% success",
        "With an eps as large as the whole input range any image can be turned into any "
        "other, so an attack must succeed on essentially every example. If it does not, the "
        "attack is failing for reasons other than the budget (masked gradients, bad step "
        "sizes), and the bounded numbers are upper bounds at best.",
    ),
    "black-box-beats-white-box": (
        "Black-box beats white-box",
        "A black-box attack (scores or random search only) broke examples that the gradient "
        "attacks with full access could not. With working gradients white-box attacks are "
        "strictly stronger, so this is the classic sign of gradient masking (Papernot et "
        "al. 2017; Athalye et al. 2018).",
    ),
}

# thresholds (documented in docs/FLAGS.md)
RANDOM_RTOL = 1e-5
RANDOM_ATOL = 1e-6
PROB_TOL = 1e-4
ZERO_GRAD_SHARE = 0.05
UNBOUNDED_MIN_SUCCESS = 0.98
STEPS_SHORT, STEPS_LONG = 10, 50
RANDOM_SEARCH_SAMPLES = 100


def _tolerance(n: int, *, examples: int = 2, share: float = 0.02) -> float:
    """Slack in accuracy units for comparisons over ``n`` examples: ``max(k/n, share)``."""
    return max(examples / max(n, 1), share)


def flag(fid: str, triggered: bool | None, detail: str, **values: Any) -> dict[str, Any]:
    """A flag record: id, title, triggered (None = not checked), measured detail,
    explanation and a pointer to the long explanation."""
    title, explanation = FLAG_INFO[fid]
    return {
        "id": fid,
        "title": title,
        "triggered": triggered,
        "detail": detail,
        "explanation": explanation,
        "doc": f"docs/FLAGS.md#{fid}",
        "values": values,
    }


# ------------------------------------------------------------------- probe measurements
def _outputs(target: Target, x: Tensor) -> Tensor:
    with torch.no_grad():
        if target.access >= Access.GRADIENTS:
            return target.logits(x).detach().float()
        if target.access >= Access.SCORES:
            return target.scores(x).float()
        return target.labels(x).float().unsqueeze(1)


def measure_randomness(target: Target, x: Tensor) -> dict[str, Any]:
    """Call the model twice on ``x``; share of rows whose outputs differ."""
    a, b = _outputs(target, x), _outputs(target, x)
    close = torch.isclose(a, b, rtol=RANDOM_RTOL, atol=RANDOM_ATOL) | (a.isnan() & b.isnan())
    differ = ~close.all(dim=1)
    return {
        "rows": int(x.shape[0]),
        "rows_differing": int(differ.sum()),
        "max_abs_diff": float((a - b).abs().nan_to_num(0.0).max()) if a.numel() else 0.0,
    }


def measure_probabilities(target: Target, x: Tensor) -> dict[str, Any] | None:
    """For logit targets: share of output rows that look like a probability vector."""
    if target.access < Access.GRADIENTS:
        return None
    z = _outputs(target, x)
    nonneg = (z >= -PROB_TOL).all(dim=1)
    sums1 = (z.sum(dim=1) - 1.0).abs() <= PROB_TOL * z.shape[1]
    return {"rows": int(z.shape[0]), "rows_probability_like": int((nonneg & sums1).sum())}


def measure_gradients(target: Target, x: Tensor, y: Tensor) -> dict[str, Any] | None:
    """Share of examples whose margin-loss input gradient is zero or not finite.

    The CW margin is used rather than cross-entropy: cross-entropy gradients underflow to
    exactly zero on very confident correct examples of a perfectly honest model, whereas the
    margin's gradient is a difference of two logit gradients and vanishes only when the
    logits themselves are flat in the input.
    """
    if target.access < Access.GRADIENTS:
        return None
    from advx.attacks.losses import input_gradient, margin_loss

    _, grad = input_gradient(target.logits, x, y, None, margin_loss)
    flat = grad.flatten(1)
    nonfinite = ~torch.isfinite(flat).all(dim=1)
    zero = (flat.nan_to_num(0.0).abs().amax(dim=1) == 0) & ~nonfinite
    return {"examples": int(x.shape[0]), "zero": int(zero.sum()), "nonfinite": int(nonfinite.sum())}


def _pgd_robust(
    target: Target, x: Tensor, y: Tensor, *, eps: float, norm: str, steps: int, seed: int
) -> Tensor:
    from advx.attacks import create

    attack = create("pgd", eps=eps, norm=norm, steps=steps, seed=seed)
    res = attack(target, x, y)
    out: Tensor = res.pred_adv == y
    return out


def unbounded_eps(target: Target, norm: str) -> float:
    """An eps that makes the ball contain the whole input box (``hi - lo`` in linf,
    ``(hi - lo) * sqrt(d)`` in l2, ``(hi - lo) * d`` in l1)."""
    lo, hi = target.bounds
    d = math.prod(target.input_shape)
    width = hi - lo
    return {"linf": width, "l2": width * math.sqrt(d), "l1": width * d}.get(norm, float(d))


def random_search(
    target: Target,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str,
    samples: int = RANDOM_SEARCH_SAMPLES,
    generator: torch.Generator,
) -> Tensor:
    """Bool ``(N,)``: some of ``samples`` random perturbations on the eps-sphere (corners
    of the linf cube, random directions in l2) changes the label. Label queries only.

    Not an attack worth running on its own: it is the weakest black-box baseline, which a
    white-box attack on an honest model must beat.
    """
    from advx.threat import clip_to_bounds, norm_of, per_example

    broken = torch.zeros(x.shape[0], dtype=torch.bool)
    for _ in range(samples):
        todo = (~broken).nonzero().flatten()
        if todo.numel() == 0:
            break
        xs = x[todo]
        if norm == "linf":
            noise = torch.randint(0, 2, xs.shape, generator=generator).to(xs.dtype) * 2 - 1
            delta = eps * noise
        else:
            noise = torch.randn(xs.shape, generator=generator, dtype=xs.dtype)
            n = per_example(norm_of(noise, norm).clamp_min(1e-12), xs)
            delta = eps * noise / n
        with torch.no_grad():
            pred = target.labels(clip_to_bounds(xs + delta, target.bounds))
        broken[todo] = pred != y[todo]
    return broken


def probe(
    target: Target,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str,
    seed: int,
    survivors: tuple[Tensor, Tensor] | None = None,
) -> dict[str, Any]:
    """Run the model-querying checks on a probe batch; return raw measurements.

    Args:
        target: the evaluated target.
        x, y: probe examples ``(P, ...)``, ``(P,)`` (the first ones of the run).
        eps: the largest eps of the run (the steps check runs there).
        norm: threat-model norm.
        seed: seed of the random starts and of the random search.
        survivors: ``(x, y)`` of examples every white-box step failed on at ``eps``; when
            given, the random-search probe runs on them (used when the suite has no
            black-box step).

    Returns:
        A JSON-friendly dict of measurements; :func:`decide` turns it into flags.
    """
    out: dict[str, Any] = {"probe_size": int(x.shape[0]), "eps": eps, "norm": norm}
    with target.attacking():
        out["randomised"] = measure_randomness(target, x)
        out["probabilities"] = measure_probabilities(target, x)
        out["gradients"] = measure_gradients(target, x, y)
    if target.access >= Access.GRADIENTS:
        with target.attacking():
            with torch.no_grad():
                correct = target.labels(x) == y
        xc, yc = x[correct], y[correct]
        if xc.shape[0] and eps > 0:
            short = _pgd_robust(target, xc, yc, eps=eps, norm=norm, steps=STEPS_SHORT, seed=seed)
            long_ = _pgd_robust(target, xc, yc, eps=eps, norm=norm, steps=STEPS_LONG, seed=seed)
            out["steps"] = {
                "examples": int(xc.shape[0]),
                "short_steps": STEPS_SHORT,
                "long_steps": STEPS_LONG,
                "robust_short": int(short.sum()),
                "robust_long": int(long_.sum()),
            }
        if xc.shape[0]:
            big = unbounded_eps(target, norm)
            rob = _pgd_robust(target, xc, yc, eps=big, norm=norm, steps=STEPS_LONG, seed=seed)
            out["unbounded"] = {
                "examples": int(xc.shape[0]),
                "eps": big,
                "succeeded": int((~rob).sum()),
            }
    if survivors is not None and eps > 0:
        g = torch.Generator().manual_seed(seed)
        broken = torch.zeros(0, dtype=torch.bool)
        if survivors[0].shape[0]:
            with target.attacking():
                broken = random_search(
                    target, survivors[0], survivors[1], eps=eps, norm=norm, generator=g
                )
        out["random_search"] = {
            "examples": int(survivors[0].shape[0]),
            "samples": RANDOM_SEARCH_SAMPLES,
            "broken": int(broken.sum()),
        }
    return out


# ------------------------------------------------------------------------- decisions
def decide(
    measurements: Mapping[str, Any] | None,
    *,
    eps: Sequence[float],
    robust_accuracy: Mapping[float, float],
    n_correct: int,
    blackbox_gain: Mapping[float, tuple[int, int]] | None = None,
    white_box_ran: bool = True,
) -> list[dict[str, Any]]:
    """Turn probe measurements and run totals into flag records (all seven, in order).

    Args:
        measurements: output of :func:`probe` (None if the probe did not run).
        eps: the run's eps values.
        robust_accuracy: eps -> robust accuracy of the whole suite.
        n_correct: examples classified correctly (the denominator for tolerances).
        blackbox_gain: eps -> (examples broken only by black-box steps, examples that were
            still robust when the first black-box step started); None if the suite has no
            black-box step that ran.
        white_box_ran: False when no white-box step could run (e.g. a score-only target):
            there is nothing for a black-box attack to beat.
    """
    m = dict(measurements or {})
    flags: list[dict[str, Any]] = []

    r = m.get("randomised")
    if r:
        flags.append(
            flag(
                "randomised",
                r["rows_differing"] > 0,
                f"{r['rows_differing']}/{r['rows']} rows differ between two identical calls "
                f"(max |diff| {r['max_abs_diff']:.3g})",
                **r,
            )
        )
    else:
        flags.append(flag("randomised", None, "not checked (no probe)"))

    p = m.get("probabilities")
    if p:
        hit = p["rows_probability_like"] == p["rows"] and p["rows"] > 0
        flags.append(
            flag(
                "probabilities",
                hit,
                f"{p['rows_probability_like']}/{p['rows']} output rows are non-negative and sum to 1",
                **p,
            )
        )
    else:
        flags.append(flag("probabilities", None, "not checked (target gives no logits)"))

    g = m.get("gradients")
    if g:
        bad = g["zero"] + g["nonfinite"]
        share = bad / max(g["examples"], 1)
        flags.append(
            flag(
                "zero-gradients",
                share > ZERO_GRAD_SHARE,
                f"{g['zero']} zero and {g['nonfinite']} non-finite input gradients out of "
                f"{g['examples']} ({share:.0%}; flag above {ZERO_GRAD_SHARE:.0%})",
                **g,
            )
        )
    else:
        flags.append(flag("zero-gradients", None, "not checked (no gradient access)"))

    s = m.get("steps")
    if s and s["examples"]:
        n = s["examples"]
        ra, rb = s["robust_short"] / n, s["robust_long"] / n
        flags.append(
            flag(
                "more-steps-worse",
                rb > ra + _tolerance(n),
                f"PGD-{s['short_steps']}: {ra:.1%} robust, PGD-{s['long_steps']}: {rb:.1%} "
                f"robust on {n} probe examples at eps={m.get('eps')}",
                **s,
            )
        )
    else:
        flags.append(flag("more-steps-worse", None, "not checked (no gradient access)"))

    es = sorted(float(e) for e in eps)
    if len(es) >= 2:
        worst = 0.0
        pair = (es[0], es[0])
        for i, lo in enumerate(es):
            for hi in es[i + 1 :]:
                rise = robust_accuracy[hi] - robust_accuracy[lo]
                if rise > worst:
                    worst, pair = rise, (lo, hi)
        tol = _tolerance(n_correct)
        curve = ", ".join(f"{e:g}: {robust_accuracy[e]:.1%}" for e in es)
        flags.append(
            flag(
                "eps-not-monotone",
                worst > tol,
                f"robust accuracy by eps: {curve}"
                + (
                    f"; rises by {worst:.1%} from eps={pair[0]:g} to {pair[1]:g}"
                    if worst > 0
                    else ""
                ),
                largest_rise=worst,
                tolerance=tol,
            )
        )
    else:
        flags.append(flag("eps-not-monotone", None, "not checked (one eps; give several --eps)"))

    u = m.get("unbounded")
    if u and u["examples"]:
        rate = u["succeeded"] / u["examples"]
        flags.append(
            flag(
                "unbounded-fails",
                rate < UNBOUNDED_MIN_SUCCESS,
                f"PGD-{STEPS_LONG} at eps={u['eps']:.4g} (the whole input range) succeeded on "
                f"{rate:.1%} of {u['examples']} probe examples (flag below "
                f"{UNBOUNDED_MIN_SUCCESS:.0%})",
                **u,
            )
        )
    else:
        flags.append(flag("unbounded-fails", None, "not checked (no gradient access)"))

    if blackbox_gain:
        worst_e, (gain, base) = max(blackbox_gain.items(), key=lambda kv: kv[1][0])
        tol = _tolerance(base, examples=1, share=0.01)
        hit = base > 0 and gain / base > tol
        flags.append(
            flag(
                "black-box-beats-white-box",
                hit,
                f"black-box steps broke {gain} of the {base} examples white-box steps left "
                f"robust at eps={worst_e:g}",
                gain=gain,
                base=base,
            )
        )
    elif m.get("random_search") is not None:
        rs = m["random_search"]
        base = rs["examples"]
        tol = _tolerance(base, examples=1, share=0.01)
        hit = base > 0 and rs["broken"] / base > tol
        flags.append(
            flag(
                "black-box-beats-white-box",
                hit,
                f"random search ({rs['samples']} label queries) broke {rs['broken']} of the "
                f"{base} examples the white-box steps left robust at eps={m.get('eps')}",
                **rs,
            )
        )
    elif not white_box_ran:
        flags.append(
            flag("black-box-beats-white-box", None, "not checked (no white-box step could run)")
        )
    else:
        flags.append(flag("black-box-beats-white-box", None, "not checked (no probe)"))
    return flags


def triggered(flags: Sequence[Mapping[str, Any]]) -> list[str]:
    """Ids of the flags that fired."""
    return [f["id"] for f in flags if f.get("triggered")]
