"""Adaptive attacks on detector-defended systems, and the detector report.

A detector that stops the attack it was shown says little; the question is whether an
attacker who knows it is there can still get through (Carlini & Wagner, AISec 2017,
"Adversarial Examples Are Not Easily Detected: Bypassing Ten Detection Methods"; Tramer,
Carlini, Brendel & Madry, NeurIPS 2020, "On Adaptive Attacks to Adversarial Example
Defenses"). The adaptive attack here is PGD (:func:`advx.attacks.pgd.pgd`, unchanged) on
the defended system's logits (:class:`~advx.defenses.rejecting.RejectingClassifier`)
with a loss that rewards fooling the classifier and penalises crossing the detector's
threshold:

    L(x) = min(margin_y(z(x)), kappa) - weight * relu(m_R(x) + kappa)

where ``margin_y = max_{j != y} z_j - z_y`` (Carlini-Wagner) on the classifier's logits
and ``m_R = (score - threshold) / score_scale`` is how far the detector is past its
threshold. Non-differentiable detector steps (bit-depth squeezing) are bypassed with BPDA
(Athalye, Carlini & Wagner, ICML 2018): the attacker differentiates
``detector.bpda()``, whose forward values are exact and whose rounding passes gradients
straight through; results are always judged on the real system.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.attacks._steps import check_steps, step_size_for
from advx.attacks.base import Attack, Model
from advx.attacks.losses import Loss, margin_loss
from advx.attacks.pgd import pgd
from advx.attacks.rng import ExampleRng
from advx.defenses.detectors import Detector
from advx.defenses.rejecting import RejectingClassifier, defended_accuracy
from advx.errors import InputError
from advx.models.adapter import Classifier


def evasion_loss(*, kappa: float = 1.0, weight: float = 1.0) -> Loss:
    """The adaptive objective on a rejecting system's logits ``(N, C+1)`` (last = reject).

    Returns a loss ``(logits, y, targets) -> (N,)`` to maximise: the classifier's margin
    (targeted: towards ``targets``), capped at ``kappa`` so that, once fooled, the attack
    spends its steps on the detector; minus ``weight`` times how far the detector is past
    its threshold plus ``kappa`` (in clean-score standard deviations), so the iterate
    settles inside the accepted region with some slack.
    """
    if not kappa >= 0 or not weight > 0:
        raise InputError(f"evasion_loss needs kappa >= 0 and weight > 0, got {kappa}, {weight}")

    def loss(logits: Tensor, y: Tensor, targets: Tensor | None = None) -> Tensor:
        z, reject = logits[:, :-1], logits[:, -1]  # (N, C), (N,)
        over = reject - z.max(dim=1).values  # (score - threshold) / score_scale
        fool = margin_loss(z, y, targets).clamp(max=kappa)
        return fool - weight * F.relu(over + kappa)

    return loss


def adaptive_pgd(
    system: Model,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "linf",
    bounds: tuple[float, float] = (0.0, 1.0),
    targets: Tensor | None = None,
    kappa: float = 1.0,
    weight: float = 1.0,
    random_init: bool = True,
    generator: ExampleRng | torch.Generator | None = None,
) -> Tensor:
    """PGD on :func:`evasion_loss` through ``system``, a callable returning a rejecting
    system's logits ``(N, C+1)`` (e.g. ``RejectingClassifier(model, det.bpda()).logits``).

    Runs the fixed schedule (no early stop: the attack-base notion of success counts a
    rejection as a label change, which is not what this attack wants) and returns the
    last iterate ``(N, ...)``.
    """
    return pgd(
        system, x, y, eps=eps, step_size=step_size, steps=steps, norm=norm, bounds=bounds,
        targets=targets, loss=evasion_loss(kappa=kappa, weight=weight),
        random_init=random_init, restarts=1, early_stop=False, generator=generator,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class AdaptivePGD(Attack):
    """Adaptive PGD against a :class:`~advx.defenses.rejecting.RejectingClassifier`
    (Carlini & Wagner 2017; Tramer et al. 2020): fool the classifier *and* stay under
    the detector's threshold. Point it at ``RejectingClassifier(model, det.bpda())``.

    Args:
        steps: iterations (default 100); ``step_size`` absolute or ``rel_step_size`` of
            eps (default ``2.5 * eps / steps``).
        kappa: confidence margin for both terms (default 1.0; logits / score stds).
        weight: weight of the detector term (default 1.0).

    The base records a rejection as a label change ("succeeded"); score the system with
    :func:`~advx.defenses.rejecting.defended_accuracy`.

    Example:
        >>> AdaptivePGD(eps=0.1)(RejectingClassifier(clf, det.bpda()), x, y)  # doctest: +SKIP
    """

    name = "adaptive-pgd"
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")
    steps: int = 100
    step_size: float | None = None
    rel_step_size: float | None = None
    kappa: float = 1.0
    weight: float = 1.0
    early_stop: bool = False

    def validate(self) -> None:
        check_steps(self.name, self.steps, self.step_size, self.rel_step_size)
        evasion_loss(kappa=self.kappa, weight=self.weight)

    def step_for(self, eps: float) -> float:
        """The absolute step size used at ``eps``."""
        return step_size_for(
            eps, self.steps, step_size=self.step_size, rel_step_size=self.rel_step_size
        )

    def run(
        self,
        model: Model,
        x: Tensor,
        y: Tensor,
        targets: Tensor | None,
        *,
        eps: float,
        bounds: tuple[float, float],
        generator: ExampleRng,
    ) -> Tensor:
        return adaptive_pgd(
            model, x, y, eps=eps, step_size=self.step_for(eps), steps=self.steps,
            norm=self.norm, bounds=bounds, targets=targets, kappa=self.kappa,
            weight=self.weight, generator=generator,
        )  # fmt: skip


@dataclass
class AttackOutcome:
    """One attack against the defended system.

    Attributes:
        fooled_model: share of attacked examples whose adversarial input fools the bare
            classifier.
        detection_rate: share of those (fooling) inputs the detector flags.
        defended_accuracy: accuracy of the defended system over all examples, a
            rejection counting as correct (:func:`defended_accuracy`).
        seconds: wall time of the attack.
    """

    fooled_model: float
    detection_rate: float
    defended_accuracy: float
    seconds: float


@dataclass
class DetectorReport:
    """What :func:`evaluate_detector` measured (``to_json()`` for the CLI and reports).

    ``scores`` keeps the detector's score of every clean input (``"clean"``) and of the
    adversarial inputs that fool the bare model (``"non_adaptive"``, ``"adaptive"``), so
    a report can draw the ROC curves without running anything again.
    """

    kind: str
    n: int
    eps: float
    threshold: float
    clean_accuracy: float
    clean_false_positive_rate: float
    defended_clean_accuracy: float
    non_adaptive: AttackOutcome
    adaptive: AttackOutcome | None
    cost: dict[str, Any] = field(default_factory=dict)
    attack: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)


def _outcome(
    model: Classifier, det: Detector, system: RejectingClassifier, x_adv: Tensor, y: Tensor,
    attacked: Tensor, seconds: float,
) -> AttackOutcome:  # fmt: skip
    with det.frozen(), torch.no_grad():
        pred_model = model(x_adv).argmax(dim=1)
        pred_sys = system.labels(x_adv)
    flagged = det.flag(x_adv)
    fooled = attacked & (pred_model != y)
    n_att, n_fool = int(attacked.sum()), int(fooled.sum())
    return AttackOutcome(
        fooled_model=n_fool / n_att if n_att else float("nan"),
        detection_rate=float(flagged[fooled].float().mean()) if n_fool else float("nan"),
        defended_accuracy=defended_accuracy(pred_sys, y, system.reject_label, adversarial=True),
        seconds=seconds,
    )


def _fooling_scores(
    model: Classifier, det: Detector, x_adv: Tensor, y: Tensor, attacked: Tensor
) -> list[float]:
    """The detector's scores of the attacked examples whose ``x_adv`` fools ``model``."""
    with det.frozen(), torch.no_grad():
        pred = torch.cat([model(x_adv[i : i + 500]).argmax(1) for i in range(0, len(x_adv), 500)])
    fooled = attacked & (pred != y)
    return det.score(x_adv[fooled]).tolist() if bool(fooled.any()) else []


def evaluate_detector(
    model: Classifier,
    detector: Detector,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    attack: str = "pgd",
    steps: int = 20,
    adaptive: bool = True,
    adaptive_steps: int = 100,
    kappa: float = 1.0,
    weight: float = 1.0,
    seed: int = 0,
    batch_size: int = 250,
    progress: Callable[[str, float], None] | None = None,
) -> DetectorReport:
    """Detection rate and defended accuracy against a non-adaptive and an adaptive attack.

    The non-adaptive attack (``attack``, default PGD with ``steps``) is crafted on the bare
    model, as if the detector were not there. The adaptive attack (:func:`adaptive_pgd`,
    ``adaptive_steps``) is crafted on the defended system, through ``detector.bpda()``.
    Both attack the examples the bare model classifies correctly.

    Args:
        model, detector: the classifier and its calibrated detector.
        x, y: held-out test inputs (N, *input_shape) and labels (N,), never used to fit
            or calibrate the detector.
        eps: linf budget.
        attack, steps: the non-adaptive attack (a registered slug) and its steps, run
            with the fixed schedule (no early stop) as in the detection papers.
        adaptive: also run the adaptive attack; ``adaptive_steps`` (default 100),
            ``kappa`` and ``weight`` as in :func:`evasion_loss`.
        seed: seed of the attacks' random starts.
        batch_size: examples per attack call.
        progress: called with ``(message, fraction done)``.

    Returns:
        A :class:`DetectorReport` (fractions in [0, 1]).
    """
    import dataclasses

    from advx.attacks import AttackResult, create, get
    from advx.targets import WhiteBox

    system = RejectingClassifier(model, detector)
    with detector.frozen(), torch.no_grad():
        pred_clean = torch.cat([model(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
        sys_clean = torch.cat([system.labels(x[i : i + 500]) for i in range(0, len(x), 500)])
    correct = pred_clean == y
    flagged_clean = detector.flag(x)
    # the papers' fixed schedule: full-strength examples, not the first that flips the label
    settings: dict[str, Any] = {"early_stop": False, "seed": seed}
    if "steps" in {f.name for f in dataclasses.fields(get(attack).cls)}:
        settings["steps"] = steps
    atk = create(attack, eps=eps, **settings)
    t0 = time.perf_counter()
    x_na = x.clone()
    for i in range(0, len(x), batch_size):
        r = atk(WhiteBox(model), x[i : i + batch_size], y[i : i + batch_size])
        if not isinstance(r, AttackResult):
            raise InputError("evaluate_detector takes a single eps")
        x_na[i : i + batch_size] = r.x_adv
        if progress:
            progress(f"{attack} (non-adaptive)", min(1.0, (i + batch_size) / len(x)))
    non_adaptive = _outcome(model, detector, system, x_na, y, correct, time.perf_counter() - t0)
    scores = {
        "clean": detector.score(x).tolist(),
        "non_adaptive": _fooling_scores(model, detector, x_na, y, correct),
    }
    outcome = None
    if adaptive:
        surrogate = RejectingClassifier(model, detector.bpda())
        x_ad = x.clone()
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        idx_all = correct.nonzero().flatten()
        with surrogate.attacking():
            for i in range(0, idx_all.numel(), batch_size):
                idx = idx_all[i : i + batch_size]
                x_ad[idx] = adaptive_pgd(
                    surrogate.logits, x[idx], y[idx], eps=eps, steps=adaptive_steps,
                    step_size=step_size_for(eps, adaptive_steps), bounds=model.bounds,
                    kappa=kappa, weight=weight, generator=g,
                ).detach()  # fmt: skip
                if progress:
                    progress("adaptive PGD", min(1.0, (i + batch_size) / max(1, idx_all.numel())))
        outcome = _outcome(model, detector, system, x_ad, y, correct, time.perf_counter() - t0)
        scores["adaptive"] = _fooling_scores(model, detector, x_ad, y, correct)
    return DetectorReport(
        kind=detector.kind,
        n=int(len(y)),
        eps=float(eps),
        threshold=float(detector.threshold),
        clean_accuracy=float(correct.float().mean()),
        clean_false_positive_rate=float(flagged_clean.float().mean()),
        defended_clean_accuracy=defended_accuracy(
            sys_clean, y, system.reject_label, adversarial=False
        ),
        non_adaptive=non_adaptive,
        adaptive=outcome,
        cost=system.cost(x[: min(len(x), 256)]),
        attack={
            "non_adaptive": {"attack": attack, "steps": steps},
            "adaptive": {"attack": "adaptive-pgd", "steps": adaptive_steps, "kappa": kappa,
                         "weight": weight} if adaptive else None,
        },
        scores=scores,
    )  # fmt: skip
