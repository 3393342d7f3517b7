"""Typed attack results: one record per example, serialisable as safetensors + JSON.

An :class:`AttackResult` holds, for a batch of ``N`` examples attacked at one eps:
the adversarial inputs (already projected and clipped: there is never a raw and a
clipped version), a status per example, predictions and confidences before and after,
the distance in the threat model's norm, the queries each example consumed, and the
wall time. Metrics over results are pure functions in :mod:`advx.metrics`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advx.errors import CheckpointError
from advx.io import atomic_path, atomic_write_text
from advx.jsonio import dumps
from advx.threat import ThreatModel


class Status(IntEnum):
    """Outcome for one example."""

    SUCCEEDED = 0  # the adversarial input fools the model (hits the target if targeted)
    FAILED = 1  # attacked, but the model still answers correctly (or misses the target)
    SKIPPED = 2  # not attacked: the model already misclassified the clean input


_TENSOR_FIELDS = (
    "x_adv",
    "y",
    "status",
    "pred_clean",
    "conf_clean",
    "pred_adv",
    "conf_adv",
    "distance",
    "queries",
)


@dataclass(frozen=True)
class AttackResult:
    """What one attack did to a batch at one eps.

    Attributes:
        x_adv: adversarial inputs ``(N, *input_shape)``, inside the eps-ball and bounds;
            equal to the clean input for skipped examples.
        y: true labels ``(N,)``.
        targets: requested target classes ``(N,)`` for a targeted attack, else None.
        status: :class:`Status` codes ``(N,)`` (int8).
        pred_clean, pred_adv: predicted labels before/after ``(N,)``.
        conf_clean, conf_adv: probability of the predicted label before/after ``(N,)``;
            NaN when the target reveals only labels.
        distance: ``||x_adv - x||`` in the threat model's norm ``(N,)``.
        queries: model evaluations the attack spent per example ``(N,)`` (the clean
            check and final verification done by the framework are not charged; their
            row count is ``overhead_queries``).
        seconds: wall time of the whole call.
        attack: registry slug of the attack.
        config: the attack's settings.
        threat: threat model (single eps).
    """

    x_adv: Tensor
    y: Tensor
    status: Tensor
    pred_clean: Tensor
    conf_clean: Tensor
    pred_adv: Tensor
    conf_adv: Tensor
    distance: Tensor
    queries: Tensor
    threat: ThreatModel
    targets: Tensor | None = None
    seconds: float = 0.0
    attack: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    overhead_queries: int = 0

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def succeeded(self) -> Tensor:
        """Bool ``(N,)``: the attack fooled the model on this example."""
        return self.status == Status.SUCCEEDED

    @property
    def skipped(self) -> Tensor:
        """Bool ``(N,)``: already misclassified, not attacked."""
        return self.status == Status.SKIPPED

    @property
    def attacked(self) -> Tensor:
        """Bool ``(N,)``: examples the attack ran on."""
        return self.status != Status.SKIPPED

    @property
    def eps(self) -> float:
        """The eps this result was computed at."""
        e = self.threat.eps
        return float(e if isinstance(e, float) else e[0])

    # -- combining ---------------------------------------------------------------------
    @staticmethod
    def concat(results: Sequence[AttackResult]) -> AttackResult:
        """Concatenate results of consecutive batches (same attack and threat model)."""
        if not results:
            raise ValueError("concat() needs at least one result")
        first = results[0]
        kw: dict[str, Any] = {
            name: torch.cat([getattr(r, name) for r in results]) for name in _TENSOR_FIELDS
        }
        if first.targets is not None:
            kw["targets"] = torch.cat([r.targets for r in results if r.targets is not None])
        return replace(
            first,
            **kw,
            seconds=sum(r.seconds for r in results),
            overhead_queries=sum(r.overhead_queries for r in results),
        )

    def to(self, device: torch.device | str) -> AttackResult:
        """This result with every tensor on ``device`` (itself if already there)."""
        device = torch.device(device)
        moved = {
            name: getattr(self, name).to(device)
            for name in (*_TENSOR_FIELDS, "targets")
            if getattr(self, name) is not None and getattr(self, name).device != device
        }
        return replace(self, **moved) if moved else self

    def subset(self, idx: Tensor) -> AttackResult:
        """The records of examples ``idx`` (indices or bool mask)."""
        kw: dict[str, Any] = {name: getattr(self, name)[idx] for name in _TENSOR_FIELDS}
        if self.targets is not None:
            kw["targets"] = self.targets[idx]
        return replace(self, **kw)

    def without_inputs(self) -> AttackResult:
        """A copy with ``x_adv`` dropped to an empty tensor (to keep memory flat when only
        the per-example records are needed)."""
        return replace(self, x_adv=self.x_adv.new_empty((0, *self.x_adv.shape[1:])))

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``result.safetensors`` + ``result.json`` into directory ``path``
        (atomically: a killed process leaves the previous content or nothing)."""
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {name: getattr(self, name).contiguous() for name in _TENSOR_FIELDS}
        if self.targets is not None:
            tensors["targets"] = self.targets.contiguous()
        meta = {
            "attack": self.attack,
            "config": self.config,
            "threat": self.threat.to_dict(),
            "seconds": self.seconds,
            "overhead_queries": self.overhead_queries,
            "n": len(self),
        }
        with atomic_path(out / "result.safetensors") as tmp:
            save_file(tensors, str(tmp))
        atomic_write_text(out / "result.json", dumps(meta, indent=2, default=str))
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AttackResult:
        """Read a result written by :meth:`save`; raises CheckpointError if damaged."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        p = Path(path)
        try:
            with open(p / "result.json") as f:
                meta = json.load(f)
            tensors = load_file(str(p / "result.safetensors"))
        except (OSError, json.JSONDecodeError, SafetensorError) as e:
            raise CheckpointError(f"cannot read attack result in {p}: {e}") from e
        missing = [n for n in _TENSOR_FIELDS if n not in tensors]
        if missing:
            raise CheckpointError(f"attack result in {p} lacks tensors {missing}")
        return cls(
            **{n: tensors[n] for n in _TENSOR_FIELDS},
            targets=tensors.get("targets"),
            threat=ThreatModel.from_dict(meta["threat"]),
            seconds=float(meta["seconds"]),
            attack=str(meta["attack"]),
            config=dict(meta["config"]),
            overhead_queries=int(meta.get("overhead_queries", 0)),
        )

    def __repr__(self) -> str:
        n = len(self)
        s = int(self.succeeded.sum())
        a = int(self.attacked.sum())
        return (
            f"AttackResult(attack={self.attack!r}, n={n}, eps={self.eps:g}, "
            f"norm={self.threat.norm}, succeeded={s}/{a}, seconds={self.seconds:.2f})"
        )


@dataclass(frozen=True)
class SweepResult:
    """Results of one attack at several eps values (one :class:`AttackResult` per eps)."""

    results: tuple[AttackResult, ...]

    @property
    def epsilons(self) -> tuple[float, ...]:
        """The eps values, in order."""
        return tuple(r.eps for r in self.results)

    def success_matrix(self) -> Tensor:
        """Bool ``(E, N)``: success of each example at each eps."""
        return torch.stack([r.succeeded for r in self.results])

    def __getitem__(self, i: int) -> AttackResult:
        return self.results[i]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.results)
