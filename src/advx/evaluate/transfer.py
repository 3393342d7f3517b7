"""Transfer matrices: craft on each source model, evaluate on every target model.

Cell ``(s, t)`` is the *transfer success rate*: among the examples that both ``s`` and
``t`` classify correctly, the share whose adversarial version crafted on ``s`` fools
``t``. Restricting to examples both models get right separates transfer from plain
misclassification (Papernot, McDaniel & Goodfellow 2016 report the misclassification
rate of the target on the source's adversarial samples; Tramèr et al. 2017 and most
later work count only examples both classify correctly, as here). The diagonal of a
source that is also a target is its white-box success rate.

Sources need gradients. Non-neural sources are attacked by documented, technique-specific
routes (:mod:`advx.evaluate.crafting`): exact torch copies of linear models, leaf search
for decision trees, neighbour steps for kNN, or a distilled substitute for anything that
only answers queries (opt in with ``substitute_data``); without a route a source is
rejected with an :class:`~advx.errors.InputError` saying what to do.

Transfer-enhancing crafting: ``attack="mi-fgsm"`` (momentum, Dong et al. 2018) with
``settings={"diversity_prob": 0.5}`` (input diversity, Xie et al. 2019), and
``ensemble=True`` (craft on the average logits of all sources, Liu et al. 2017).

Papers' qualitative findings checked on a matrix (:func:`papernot_check`) live in
:mod:`advx.evaluate.transfer_findings`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import advx.evaluate.crafting as crafting
from advx.errors import CheckpointError, InputError
from advx.evaluate.data import as_data
from advx.evaluate.progress import Progress
from advx.evaluate.provenance import versions
from advx.evaluate.records import derive_seed, write_json
from advx.evaluate.transfer_findings import PAPERNOT_FINDINGS as PAPERNOT_FINDINGS
from advx.evaluate.transfer_findings import papernot_check as papernot_check
from advx.models.adapter import Classifier
from advx.targets import Target, WhiteBox

TRANSFER_JSON = "transfer.json"


@dataclass(frozen=True)
class Source:
    """A model examples are crafted on.

    Attributes:
        name: row label.
        route: how it is attacked: ``white-box``, ``linear (exact torch copy)``,
            ``decision-tree leaf search``, ``kNN neighbour steps``, ``substitute (...)``,
            ``ensemble``.
        labels: the source's own predictions ``(N, ...) -> (N,)`` (decides which examples
            it classifies correctly).
        craft: ``(x, y, seed) -> x_adv`` at the matrix's eps.
    """

    name: str
    route: str
    labels: Callable[[Tensor], Tensor]
    craft: Callable[[Tensor, Tensor, int], Tensor]


def _white(model: Any, name: str) -> WhiteBox:
    if isinstance(model, WhiteBox):
        return model
    if isinstance(model, nn.Module):
        return WhiteBox(model, name=name)
    raise InputError(f"{name}: not a torch model")


def _labels_of(target: Target) -> Callable[[Tensor], Tensor]:
    def labels(x: Tensor) -> Tensor:
        with target.attacking(), torch.no_grad():
            return target.labels(x).long()

    return labels


def _attack_craft(
    white: WhiteBox, attack: str, eps: float, norm: str, settings: Mapping[str, Any]
) -> Callable[[Tensor, Tensor, int], Tensor]:
    from advx.attacks import create

    create(attack, eps=eps, norm=norm, **settings)  # validate settings once, early

    def craft(x: Tensor, y: Tensor, seed: int) -> Tensor:
        res = create(attack, eps=eps, norm=norm, seed=seed, **settings)(white, x, y)
        out: Tensor = res.x_adv
        return out

    return craft


def make_source(
    model: Any,
    *,
    name: str,
    eps: float,
    attack: str = "pgd",
    norm: str = "linf",
    settings: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    num_classes: int | None = None,
    substitute_data: Tensor | None = None,
    seed: int = 0,
) -> Source:
    """Wrap ``model`` as a :class:`Source`, choosing its crafting route.

    Args:
        model: a torch module / :class:`~advx.targets.WhiteBox` (attacked with ``attack``),
            a scikit-learn estimator or a zoo wrapper around one (linear: exact torch copy
            + ``attack``; tree: leaf search; kNN: neighbour steps), or any target/model
            that only answers queries (then ``substitute_data`` is required).
        name: row label.
        eps: budget in ``norm`` (input units).
        attack, settings: registry slug and settings for gradient routes.
        input_shape, bounds, num_classes: metadata for non-torch models (defaults read
            from the model when it has them).
        substitute_data: training inputs to distill a substitute from, for sources that
            only answer queries (forests, kernel SVMs, HTTP endpoints).
        seed: seed of the substitute's training.
    """
    settings = dict(settings or {})
    kind = crafting.route(model)
    shape = tuple(input_shape or getattr(model, "input_shape", ()) or ())
    lo_hi = tuple(getattr(model, "bounds", None) or bounds)
    bnds = (float(lo_hi[0]), float(lo_hi[1]))
    if kind == "torch":
        white = _white(model, name)
        return Source(
            name, "white-box", _labels_of(white), _attack_craft(white, attack, eps, norm, settings)
        )
    if not shape:
        raise InputError(f"{name}: pass input_shape= for a non-torch source")
    if kind == "linear":
        clf = crafting.linear_module(model, input_shape=shape, bounds=bnds)
        white = WhiteBox(clf, name=name)
        return Source(
            name, "linear (exact torch copy)", _labels_of(_query_target(model, name)),
            _attack_craft(white, attack, eps, norm, settings),
        )  # fmt: skip
    if kind == "tree":

        def tree(x: Tensor, y: Tensor, seed: int) -> Tensor:
            return crafting.tree_craft(model, x, y, eps=eps, norm=norm, bounds=bnds)

        return Source(
            name, "decision-tree leaf search", _labels_of(_query_target(model, name)), tree
        )
    if kind == "knn":

        def knn(x: Tensor, y: Tensor, seed: int) -> Tensor:
            return crafting.knn_craft(model, x, y, eps=eps, norm=norm, bounds=bnds)

        return Source(name, "kNN neighbour steps", _labels_of(_query_target(model, name)), knn)
    target = _query_target(model, name)
    if substitute_data is None:
        raise InputError(
            f"source {name!r} is not differentiable and has no crafting route "
            f"({type(crafting.unwrap(model)).__name__}); use it as a target, or craft on a "
            "distilled substitute (advx transfer --substitute / substitute_data=)"
        )
    classes = num_classes or target.num_classes
    sub, agree = crafting.distill(
        _labels_of(target), substitute_data, num_classes=classes, bounds=bnds, seed=seed
    )
    white = WhiteBox(sub, name=f"{name} (substitute)")
    return Source(
        name, f"substitute MLP ({agree:.1%} agreement)", _labels_of(target),
        _attack_craft(white, attack, eps, norm, settings),
    )  # fmt: skip


def _query_target(model: Any, name: str) -> Target:
    from advx.adapters import as_target

    return as_target(model, name=name)


class Ensemble(nn.Module):
    """Average of the logits of several classifiers over the same inputs and classes."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:  # (N, ...) -> (N, C)
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


def ensemble_source(
    models: Mapping[str, Any],
    *,
    eps: float,
    attack: str = "pgd",
    norm: str = "linf",
    settings: Mapping[str, Any] | None = None,
) -> Source:
    """One source crafting on the average logits of ``models`` (all torch, or sklearn
    linear models converted exactly) — Liu, Chen, Liu & Song, ICLR 2017, "Delving into
    Transferable Adversarial Examples and Black-box Attacks"."""
    members: list[nn.Module] = []
    shape: tuple[int, ...] | None = None
    for name, m in models.items():
        kind = crafting.route(m)
        if kind == "torch":
            module = m.model if isinstance(m, WhiteBox) else m
        elif kind == "linear":
            module = crafting.linear_module(
                m, input_shape=m.input_shape, bounds=getattr(m, "bounds", (0.0, 1.0))
            )
        else:
            raise InputError(f"ensemble member {name!r} is not differentiable ({kind}); drop it")
        members.append(module)
        s = tuple(getattr(module, "input_shape", ()))
        if shape is not None and s and s != shape:
            raise InputError(f"ensemble members disagree on input shape: {shape} vs {s} ({name})")
        shape = s or shape
    if not members:
        raise InputError("an ensemble needs at least one source")
    first = members[0]
    clf = Classifier(
        Ensemble(members),
        input_shape=getattr(first, "input_shape", shape or ()),
        num_classes=int(getattr(first, "num_classes", 0)) or 10,
        bounds=getattr(first, "bounds", (0.0, 1.0)),
    ).eval()
    name = "ensemble(" + "+".join(models) + ")"
    white = WhiteBox(clf, name=name)
    return Source(
        name,
        "ensemble (average logits)",
        _labels_of(white),
        _attack_craft(white, attack, eps, norm, dict(settings or {})),
    )


@dataclass(frozen=True)
class TransferResult:
    """A measured transfer matrix (rows: sources, columns: targets).

    Attributes:
        sources, targets: names.
        fooled, eligible: counts per cell; ``eligible`` = examples both models classify
            correctly, ``fooled`` = those whose source-crafted version fools the target.
        source_success: white-box success of each source on itself (share of the
            examples it classifies correctly that its own adversarial version fools).
        clean_accuracy: every model's clean accuracy on the ``n`` examples.
        routes: source name -> crafting route.
        config: attack, settings, eps, norm, n, seed, ensemble.
        seconds: wall time.
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    fooled: tuple[tuple[int, ...], ...]
    eligible: tuple[tuple[int, ...], ...]
    source_success: tuple[float | None, ...]
    clean_accuracy: dict[str, float]
    routes: dict[str, str]
    config: dict[str, Any]
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def matrix(self) -> list[list[float | None]]:
        """Success rates ``[source][target]`` (None where no example is eligible)."""
        return [
            [f / e if e else None for f, e in zip(fr, er, strict=True)]
            for fr, er in zip(self.fooled, self.eligible, strict=True)
        ]

    def rate(self, source: str, target: str) -> float | None:
        """One cell."""
        return self.matrix[self.sources.index(source)][self.targets.index(target)]

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (what ``--json`` prints and ``transfer.json`` holds)."""
        d = asdict(self)
        d["kind"] = "transfer"
        d["matrix"] = self.matrix
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TransferResult:
        """Inverse of :meth:`to_json`."""
        return cls(
            sources=tuple(d["sources"]),
            targets=tuple(d["targets"]),
            fooled=tuple(tuple(int(v) for v in r) for r in d["fooled"]),
            eligible=tuple(tuple(int(v) for v in r) for r in d["eligible"]),
            source_success=tuple(d["source_success"]),
            clean_accuracy=dict(d["clean_accuracy"]),
            routes=dict(d["routes"]),
            config=dict(d["config"]),
            seconds=float(d["seconds"]),
            meta=dict(d.get("meta", {})),
        )

    def save(self, run_dir: str | Path) -> Path:
        """Write ``run_dir/transfer.json`` (atomically)."""
        path = Path(run_dir) / TRANSFER_JSON
        write_json(path, self.to_json())
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> TransferResult:
        """Read ``transfer.json`` from ``run_dir`` (or the file itself)."""
        p = Path(run_dir)
        path = p if p.suffix == ".json" else p / TRANSFER_JSON
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"cannot read transfer results {path}: {e}") from e


def transfer_matrix(
    sources: Mapping[str, Source | Any],
    targets: Mapping[str, Any],
    data: Any,
    *,
    eps: float,
    attack: str = "pgd",
    settings: Mapping[str, Any] | None = None,
    norm: str = "linf",
    n: int | None = None,
    batch_size: int = 250,
    seed: int = 0,
    ensemble: bool = False,
    progress: Progress | None = None,
    meta: Mapping[str, Any] | None = None,
) -> TransferResult:
    """Craft on every source, evaluate on every target, count transfer successes.

    Args:
        sources: name -> :class:`Source` or model (wrapped with :func:`make_source`;
            non-differentiable models without a route are rejected).
        targets: name -> any model or :class:`~advx.targets.Target` (torch, scikit-learn,
            ONNX, HTTP): only labels are used.
        data: ``(x, y)`` tensors or a dataset with ``x``/``y`` or ``batch(start, stop)``.
        eps: budget in ``norm`` (input units).
        attack, settings: registry slug and settings for gradient routes (e.g.
            ``"mi-fgsm"`` with ``{"diversity_prob": 0.5}``).
        n: first ``n`` examples (default all).
        batch_size: examples per batch (memory stays flat in ``n``).
        seed: per-batch, per-source seeds derive from it.
        ensemble: craft on the average logits of all sources (one row) instead of on
            each source.
        progress: ``(done, total, description)`` callback.

    Returns:
        A :class:`TransferResult`.

    Example:
        >>> res = transfer_matrix({"cnn": cnn}, {"mlp": mlp, "tree": tree}, (x, y), eps=0.1)  # doctest: +SKIP
        >>> res.rate("cnn", "tree")  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    if not sources or not targets:
        raise InputError("give at least one source and one target")
    if not eps >= 0 or math.isinf(eps):
        raise InputError(f"eps must be a finite number >= 0, got {eps}")
    ds = as_data(data)
    total = len(ds)
    n = total if n is None else int(n)
    if not 1 <= n <= total:
        raise InputError(f"n must be in [1, {total}], got {n}")
    settings = dict(settings or {})
    if ensemble:
        srcs = [ensemble_source(sources, eps=eps, attack=attack, norm=norm, settings=settings)]
    else:
        x0, _ = ds.batch(0, 1)
        lo, hi = getattr(data, "bounds", None) or (0.0, 1.0)
        srcs = [
            s
            if isinstance(s, Source)
            else make_source(
                s,
                name=k,
                eps=eps,
                attack=attack,
                norm=norm,
                settings=settings,
                input_shape=tuple(x0.shape[1:]),
                bounds=(float(lo), float(hi)),
            )  # fmt: skip
            for k, s in sources.items()
        ]
    tgts = {k: _labels_of(_query_target(m, k)) for k, m in targets.items()}
    tnames = tuple(tgts)
    fooled = [[0] * len(tnames) for _ in srcs]
    eligible = [[0] * len(tnames) for _ in srcs]
    own = [[0, 0] for _ in srcs]  # (fooled itself, correct)
    correct_count: dict[str, int] = {}
    n_batches = math.ceil(n / batch_size)
    units, done = n_batches * len(srcs), 0
    for b in range(n_batches):
        x, y = ds.batch(b * batch_size, min(n, (b + 1) * batch_size))
        x, y = torch.as_tensor(x), torch.as_tensor(y).long()
        t_ok = {k: f(x) == y for k, f in tgts.items()}
        for k, ok in t_ok.items():
            correct_count[k] = correct_count.get(k, 0) + int(ok.sum())
        for si, src in enumerate(srcs):
            s_ok = src.labels(x) == y
            if src.name not in tgts:
                correct_count[src.name] = correct_count.get(src.name, 0) + int(s_ok.sum())
            x_adv = x.clone()
            idx = s_ok.nonzero().flatten()
            if idx.numel():
                x_adv[idx] = src.craft(x[idx], y[idx], derive_seed(seed, b, si)).to(x.dtype)
            own[si][0] += int((s_ok & (src.labels(x_adv) != y)).sum())
            own[si][1] += int(s_ok.sum())
            for ti, k in enumerate(tnames):
                both = s_ok & t_ok[k]
                eligible[si][ti] += int(both.sum())
                if bool(both.any()):
                    fooled[si][ti] += int((both & (tgts[k](x_adv) != y)).sum())
            done += 1
            if progress is not None:
                progress(done, units, f"batch {b + 1}/{n_batches}: {src.name}")
    return TransferResult(
        sources=tuple(s.name for s in srcs),
        targets=tnames,
        fooled=tuple(tuple(r) for r in fooled),
        eligible=tuple(tuple(r) for r in eligible),
        source_success=tuple(f / c if c else None for f, c in own),
        clean_accuracy={k: v / n for k, v in correct_count.items()},
        routes={s.name: s.route for s in srcs},
        config={
            "attack": attack,
            "settings": settings,
            "eps": eps,
            "norm": norm,
            "n": n,
            "seed": seed,
            "ensemble": ensemble,
        },
        seconds=round(time.perf_counter() - t0, 3),
        meta={"versions": versions(), **(meta or {})},
    )
