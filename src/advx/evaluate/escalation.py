"""Escalation: run the expensive attacks of a suite only where the cheap ones may be wrong.

AutoAttack (Croce & Hein 2020) runs FAB-T and Square on every example the gradient
attacks leave robust, because a gradient attack can fail for reasons other than the model
being robust: masked gradients (Athalye et al. 2018) or an optimisation that had not
converged. On a model with honest gradients those last two attacks almost never add
anything (Croce & Hein report +0.0-0.1 points on most defenses) yet cost most of the time
when most examples resist: Square's 5000 queries and FAB-T's nine runs per example.

An adaptive suite marks such steps with ``escalate=(sign, ...)``: they run only on the
still-robust examples that show one of these signs, measured on each example after the
gradient steps (:func:`signs`):

* ``zero-gradient``: the margin's input gradient is exactly zero or not finite at the
  clean input or at the gradient attacks' best point: a gradient attack could not move
  there (quantisation, thresholds, saturated outputs).
* ``masked-model``: more than :data:`MASKED_SHARE` of the batch's surviving examples
  have zero gradients: the model masks gradients, so every survivor escalates.
* ``unconverged``: a short continuation (:data:`CONTINUE_STEPS` steepest-descent steps of
  ``eps / 10`` on the margin, from the best point) still lowered the logit margin by more
  than :data:`CONTINUE_GAIN` of it, or crossed the boundary: the gradient attacks had
  not finished.
* ``random-search``: a few random corners of the eps-ball (:data:`RANDOM_SAMPLES` label
  queries) fool the model where the gradient attacks did not: black-box beats white-box.
* ``near-boundary``: the best point keeps at most :data:`NEAR_BOUNDARY` of the clean
  logit margin. There the random start decides: on a PGD-trained CNN one such example
  fell to APGD-T towards its fifth most likely class from 3 of 8 random starts, and
  stayed robust from the others (final margins 1-6% of the clean one), so AutoAttack's
  single run broke it and advx's did not (bench/README.md, "Adaptive `standard`
  suite"). The remedy is the gradient attack again, longer and from new random starts,
  not FAB or Square: on a standard CNN another such example needed a longer APGD-T run
  (crossing from 1 of 32 starts at 100 steps, 22 of 32 at 300).

The "best point" of an example is the adversarial candidate with the smallest logit
margin among the gradient steps' outputs (:class:`Tracker`; one forward pass per step on
the examples it attacked). Each escalation record lists which examples escalated and why,
so a report can show where the budget went.
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.attacks._steps import project_step, steepest_step
from advx.attacks.losses import input_gradient, margin_loss
from advx.targets import Target
from advx.threat import per_example

#: sign -> one-line explanation (``advx eval --list`` and the report show these)
SIGNS: dict[str, str] = {
    "zero-gradient": "zero or non-finite input gradient at the clean input or the best point",
    "masked-model": "over 5% of the batch's survivors have zero gradients: all escalate",
    "unconverged": "a short continuation from the best point still lowered the margin",
    "random-search": "a random corner of the eps-ball fools the model",
    "near-boundary": "the best point keeps at most 10% of the clean margin: a longer run "
    "from another random start may cross",
}
MASKED_SHARE = 0.05
CONTINUE_STEPS = 10
CONTINUE_GAIN = 0.1
RANDOM_SAMPLES = 10
#: ``near-boundary``: best-point margin at most this share of the clean margin (on the
#: example above, APGD-T's final margin spread over 8% of the clean one across 8 starts)
NEAR_BOUNDARY = 0.1


def logit_margin(target: Target, x: Tensor, y: Tensor) -> Tensor:
    """``z_y - max_{j != y} z_j`` ``(N,)`` (positive: still correct), no gradient."""
    with torch.no_grad():
        return -margin_loss(target.logits(x), y)


class Tracker:
    """Keeps, per example of a batch, the gradient steps' candidate closest to the boundary.

    Args:
        x: the clean batch ``(B, ...)``; every example starts at its clean point.
    """

    def __init__(self, target: Target, x: Tensor, y: Tensor) -> None:
        self.target, self.y = target, y
        self.best = x.detach().clone()
        self.margin = torch.full((x.shape[0],), float("inf"))

    def update(self, sel: Tensor, x_adv: Tensor) -> None:
        """Offer the candidates ``x_adv`` of the examples ``sel`` (indices into the batch)."""
        with self.target.attacking():
            m = logit_margin(self.target, x_adv.to(self.target.dtype), self.y[sel]).cpu().float()
        better = m < self.margin[sel]
        i = sel[better]
        self.best[i], self.margin[i] = x_adv[better].to(self.best.dtype), m[better]


def signs(
    target: Target,
    x: Tensor,
    y: Tensor,
    x_best: Tensor,
    *,
    eps: float,
    norm: str,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """Per-example escalation signs (bool ``(N,)`` each, keys of :data:`SIGNS`) for the
    examples ``x`` the gradient steps left robust, with ``x_best`` their best points."""
    n = x.shape[0]
    bounds = target.bounds
    x, x_best = x.to(target.dtype), x_best.to(target.dtype)
    with target.attacking():
        zero = torch.zeros(n, dtype=torch.bool)
        for point in (x, x_best):
            _, g = input_gradient(target.logits, point, y, None, margin_loss)
            flat = g.flatten(1)
            bad = ~torch.isfinite(flat).all(dim=1) | (flat.nan_to_num(0.0).abs().amax(dim=1) == 0)
            zero |= bad.cpu()
        masked = bool(zero.float().mean() > MASKED_SHARE) if n else False

        start = logit_margin(target, x_best, y)
        near = (start <= NEAR_BOUNDARY * logit_margin(target, x, y)).cpu()
        low, cur = start.clone(), x_best.clone()
        for _ in range(CONTINUE_STEPS):
            logits, g = input_gradient(target.logits, cur, y, None, margin_loss)
            low = torch.minimum(low, -margin_loss(logits, y))
            cur = project_step(cur + eps / 10 * steepest_step(g, norm), x, eps, norm, bounds)
        low = torch.minimum(low, logit_margin(target, cur, y))
        gain = start - low
        unconverged = ((low < 0) | (gain > CONTINUE_GAIN * start.abs().clamp_min(1e-12))).cpu()

        fooled = torch.zeros(n, dtype=torch.bool)
        for _ in range(RANDOM_SAMPLES):
            corner = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
            if norm != "linf":
                corner = corner / per_example(corner.flatten(1).norm(dim=1), x)
            with torch.no_grad():
                pred = target.labels(project_step(x + eps * corner, x, eps, norm, bounds))
            fooled |= (pred != y).cpu()
    return {
        "zero-gradient": zero,
        "masked-model": torch.full((n,), masked),
        "unconverged": unconverged,
        "random-search": fooled,
        "near-boundary": near,
    }
