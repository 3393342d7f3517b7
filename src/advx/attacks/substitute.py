"""Substitute training (Papernot et al. 2017): learn a local copy of a label-only model
with Jacobian-based dataset augmentation, attack the copy white-box, transfer."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from advx.attacks.base import Attack, Model
from advx.attacks.gradient_estimation import resolve_inner
from advx.attacks.registry import register
from advx.attacks.rng import ExampleRng
from advx.errors import InputError
from advx.models.adapter import Classifier
from advx.targets import Access, Query, Target

ARCHS = ("mlp", "cnn")


def substitute_net(arch: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A small substitute network: ``"mlp"`` (two hidden layers of 200 ReLU units, the
    size of the paper's MNIST substitutes) or ``"cnn"`` (two 3x3 conv + pool blocks of 32
    and 64 channels, then 200 hidden units; needs image inputs ``(C, H, W)``)."""
    d = math.prod(input_shape)
    if arch == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(d, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
            nn.Linear(200, num_classes),
        )  # fmt: skip
    if arch == "cnn":
        if len(input_shape) != 3:
            raise InputError(f"arch='cnn' needs image inputs (C, H, W), got {input_shape}")
        c, h, w = input_shape
        return nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 200), nn.ReLU(),
            nn.Linear(200, num_classes),
        )  # fmt: skip
    raise InputError(f"unknown substitute arch {arch!r}; choose one of {ARCHS}")


def _labeller(oracle: Target | Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """``label(points, family)``: oracle labels of ``points`` sorted by seed ``family``,
    charged to each point's family when the oracle is a :class:`Query`."""

    def label(pts: Tensor, fam: Tensor) -> Tensor:
        if isinstance(oracle, Target):
            return oracle.labels(pts)
        if not isinstance(oracle, Query):
            return oracle(pts).long()
        out = torch.empty(pts.shape[0], dtype=torch.int64)
        fams, counts = fam.unique_consecutive(return_counts=True)
        for c in counts.unique().tolist():  # a view charges c rows to each of its examples
            group = fams[counts == c]
            rows = torch.isin(fam, group)
            out[rows] = oracle.at(group)(pts[rows.to(pts.device)]).cpu().long()
        return out

    return label


def train_substitute(
    oracle: Target | Callable[[Tensor], Tensor],
    x_seed: Tensor,
    *,
    rounds: int = 6,
    lam: float = 0.1,
    tau: int | None = None,
    epochs: int = 10,
    arch: str = "mlp",
    net: nn.Module | None = None,
    num_classes: int | None = None,
    y_seed: Tensor | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[Classifier, int]:
    """Train a substitute of a label-only ``oracle`` from seed inputs ``x_seed`` (n, ...).

    Papernot, McDaniel, Goodfellow, Jha, Celik & Swami, AsiaCCS 2017, "Practical
    Black-Box Attacks against Machine Learning", Algorithm 1: for each of ``rounds``
    rounds, label the new points with the oracle, train the substitute ``F`` for
    ``epochs`` epochs on all labelled points, then double the set with
    ``x + lam_r * sign(dF_{O(x)}(x)/dx)`` (Jacobian-based augmentation, clipped to
    ``bounds``); with ``tau``, ``lam_r = lam * (-1)^floor(r / tau)`` (the paper's periodic
    step). Only new points are labelled: ``n * 2^(rounds-1)`` queries, ``n`` fewer when
    ``y_seed`` (the oracle's labels of the seeds, if already known) is given.

    Args:
        oracle: a :class:`~advx.targets.Target` (its ``labels``), a labels
            :class:`~advx.targets.Query` (queries charged to each seed's family), or a
            callable ``x -> labels``.
        arch / net: the substitute network (``"mlp"`` or ``"cnn"``, see
            :func:`substitute_net`), or your own ``net`` mapping inputs to logits.
        num_classes: classes of the oracle (read from a Target/Query when omitted).
        seed: seeds the substitute's initialisation and data order (global RNG state is
            left untouched).

    Returns:
        ``(substitute, queries)``: an eval-mode :class:`Classifier` and the number of
        oracle queries spent.

    Example:
        >>> sub, q = train_substitute(LabelBox(fn, ...), x_test[:150], rounds=6)  # doctest: +SKIP
    """
    if rounds < 1 or epochs < 1 or not lam > 0 or (tau is not None and tau < 1):
        raise InputError("train_substitute: rounds, epochs, tau must be >= 1 and lam > 0")
    if num_classes is None:
        tgt = oracle.oracle.target if isinstance(oracle, Query) else oracle
        if not isinstance(tgt, Target):
            raise InputError("train_substitute: give num_classes= for a plain callable oracle")
        num_classes = tgt.num_classes
    n, shape = x_seed.shape[0], tuple(x_seed.shape[1:])
    label = _labeller(oracle)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        sub = Classifier(
            net if net is not None else substitute_net(arch, shape, num_classes),
            input_shape=shape, num_classes=num_classes, bounds=bounds,
        )  # fmt: skip
    sub = sub.to(x_seed.dtype)  # the substitute computes in the dtype of the data
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(sub.parameters(), lr=lr)
    pts, fam = x_seed.detach().clone(), torch.arange(n)
    queries = 0
    if y_seed is None:
        labels = label(pts, fam)
        queries += n
    else:
        labels = y_seed.detach().cpu().long().clone()
    for r in range(rounds):
        sub.train()
        for _ in range(epochs):
            for b in torch.randperm(pts.shape[0], generator=g).split(batch_size):
                loss = nn.functional.cross_entropy(sub(pts[b]), labels[b].to(pts.device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        sub.eval()
        if r == rounds - 1:
            break
        # Jacobian-based augmentation: one new point per labelled point
        step = lam * (-1) ** (r // tau) if tau else lam
        with sub.frozen_eval():
            xr = pts.detach().requires_grad_(True)
            chosen = sub(xr).gather(1, labels.to(pts.device)[:, None]).sum()
            (jac,) = torch.autograd.grad(chosen, xr)
        new, new_fam = (pts + step * jac.sign()).clamp(bounds[0], bounds[1]), fam
        if isinstance(oracle, Query) and oracle.remaining is not None:
            # a seed's family doubles only while that seed's budget pays for it
            afford = oracle.remaining.cpu() >= torch.bincount(fam, minlength=len(oracle))
            keep = afford[fam]
            new, new_fam = new[keep.to(new.device)], fam[keep]
        if new.shape[0] == 0:
            break
        new_labels = label(new, new_fam)
        queries += new.shape[0]
        order = torch.cat([fam, new_fam]).argsort(stable=True)  # keep families contiguous
        pts, labels = torch.cat([pts, new])[order], torch.cat([labels, new_labels])[order]
        fam = torch.cat([fam, new_fam])[order]
    return sub.eval(), queries


@register(
    "substitute",
    "Substitute training + white-box transfer from labels only (Papernot et al. 2017)",
)
@dataclass(frozen=True, kw_only=True)
class Substitute(Attack):
    """Practical black-box attack (Papernot et al., AsiaCCS 2017): train a substitute
    from label queries (:func:`train_substitute`), attack it white-box, and hand the
    adversarial inputs to the target (transfer). Needs labels only.

    The substitute keeps its weights from round to round (the paper does not say whether
    it retrains from scratch; warm starts cost less). The attacked inputs themselves are
    the seed set (the adversary's few in-distribution
    samples): the first ``seeds`` examples the target classifies correctly; their labels
    are known from the framework's clean check, so they cost no query. Each seed is
    charged the queries of its augmentation family (``2^(rounds-1) - 1``); the other
    examples cost none. ``result.queries`` is the labelling cost, and the success rate is
    the transfer success.

    Args:
        attack: the white-box attack run on the substitute: an instance, or a registry slug
            (default ``"fgsm"``, as in the paper) built with this ``eps``, ``norm`` and
            ``settings``.
        settings: the slug's settings, e.g. ``{"steps": 20}`` for ``"pgd"``.
        seeds: seed-set size (default 150, the paper's MNIST setting).
        rounds: substitute training rounds (default 6, as the paper); ``lam``: augmentation
            step (default 0.1); ``tau``: period of the step's sign flip (default none).
        epochs: training epochs per round (default 10, as the paper).
        arch: ``"mlp"`` (default) or ``"cnn"``.

    Example:
        >>> Substitute(eps=0.3, attack="fgsm")(LabelBox(fn, ...), x, y)  # doctest: +SKIP
    """

    name = "substitute"
    access = Access.LABELS
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")  # those of its default crafting attack (fgsm)
    attack: Attack | str = "fgsm"
    settings: Mapping[str, Any] | None = None
    seeds: int = 150
    rounds: int = 6
    lam: float = 0.1
    tau: int | None = None
    epochs: int = 10
    arch: str = "mlp"

    def __post_init__(self) -> None:
        inner = resolve_inner(
            self.name, self.attack, self.settings, self.eps, self.norm, self.early_stop
        )
        object.__setattr__(self, "attack", inner)
        object.__setattr__(self, "settings", None)
        object.__setattr__(self, "norm", inner.norm)
        if self.eps is None:
            object.__setattr__(self, "eps", inner.eps)
        super().__post_init__()

    def validate(self) -> None:
        self.positive(seeds=self.seeds, rounds=self.rounds, lam=self.lam, epochs=self.epochs)
        if self.tau is not None and self.tau < 1:
            raise InputError(f"substitute: tau must be >= 1, got {self.tau}")
        if self.arch not in ARCHS:
            raise InputError(f"substitute: arch must be one of {ARCHS}, got {self.arch!r}")

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
        k = min(self.seeds, x.shape[0])
        # the substitute is trained on the batch's first examples, so it (unlike the
        # per-example attacks) depends on how the data is batched
        seed = int(generator.seeds()[0]) % (2**31 - 1) if len(generator) else 0
        oracle = model.at(torch.arange(k)) if isinstance(model, Query) else model
        sub, _ = train_substitute(
            oracle, x[:k], rounds=self.rounds, lam=self.lam, tau=self.tau, epochs=self.epochs,
            arch=self.arch, y_seed=y[:k], bounds=bounds, seed=seed,
        )  # fmt: skip
        inner = self.attack
        if not isinstance(inner, Attack):  # resolved in __post_init__
            raise InputError(f"{self.name}: inner attack not resolved")
        with sub.frozen_eval():
            return inner.run(sub, x, y, targets, eps=eps, bounds=bounds, generator=generator)
