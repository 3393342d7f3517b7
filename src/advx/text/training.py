"""Training text models, plainly and adversarially.

:func:`fit` trains a :class:`~advx.text.models.TextClassifier` (mini-batches of token
ids, Adam, cross-entropy) or a :class:`~advx.text.models.MiniLMClassifier` (the head on
precomputed, disk-cached sentence embeddings when the encoder is frozen).

:func:`adversarial_fit` is data augmentation with attack outputs, the text form of
adversarial training (as in Jin et al. 2020, §5; Ren et al. 2019, §5): train, attack a
sample of the training set with a recipe, add the successful adversarial texts with
their true labels, continue training; repeated for a few rounds. Unlike image
adversarial training the attack is not run on every batch: text attacks are discrete
searches, thousands of times slower than a PGD step.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advx.errors import InputError
from advx.text.models import MiniLMClassifier, TextClassifier

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


@dataclass
class FitReport:
    """What training did: ``epochs`` run, final ``train_loss``, ``seconds``, and for
    adversarial training the ``rounds`` (per round: examples attacked, adversarial
    texts added, attack success rate on the training sample)."""

    epochs: int = 0
    train_loss: float = float("nan")
    seconds: float = 0.0
    rounds: list[dict[str, Any]] = field(default_factory=list)


def cache_dir() -> Path:
    """Where derived data is cached: ``$ADVX_CACHE_DIR``, else ``~/.cache/advx``."""
    env = os.environ.get("ADVX_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "advx"


def minilm_features(texts: Sequence[str], *, cache: bool = True) -> Tensor:
    """MiniLM embeddings ``(N, 384)`` of ``texts``, cached on disk (safetensors) by a hash
    of the texts and the encoder file, so retraining a head costs seconds."""
    from safetensors.torch import load_file, save_file

    from advx.text.minilm import MiniLMEncoder, model_dir

    enc = MiniLMEncoder.default()
    h = hashlib.sha256()
    f = model_dir() / "model.safetensors"
    h.update(f"{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\x00")
    path = cache_dir() / f"minilm-features-{h.hexdigest()[:24]}.safetensors"
    if cache and path.is_file():
        try:
            feats = load_file(str(path))["features"]
            if feats.shape == (len(texts), 384):
                return feats
        except Exception:  # a damaged cache file is recomputed  # noqa: BLE001
            log.warning("ignoring damaged feature cache %s", path)
    feats = enc.encode(list(texts))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"features": feats.contiguous()}, str(tmp))
        os.replace(tmp, path)
    return feats


def fit(
    model: TextClassifier | MiniLMClassifier,
    texts: Sequence[str],
    labels: Tensor,
    *,
    epochs: int = 5,
    lr: float = 2e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> FitReport:
    """Train ``model`` on ``texts`` with ``labels`` ``(N,)`` (cross-entropy, Adam).

    Args:
        epochs: passes over the data (default 5).
        lr: Adam learning rate (default 2e-3).
        batch_size: texts per step (default 64).
        weight_decay: L2 penalty (default 0).
        seed: seed of initial shuffling and dropout.
        progress: called as ``progress(message, fraction_done)``.

    Returns:
        :class:`FitReport`. The model is left in eval mode.
    """
    texts = list(texts)
    labels = torch.as_tensor(labels).long()
    if len(texts) != len(labels) or not texts:
        raise InputError(f"got {len(texts)} texts and {len(labels)} labels; need equal, > 0")
    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise InputError("epochs and batch_size must be >= 1 and lr > 0")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    frozen_minilm = isinstance(model, MiniLMClassifier) and model.bert is None
    inputs: Any
    if frozen_minilm:
        inputs = minilm_features(texts)  # (N, 384)
    elif isinstance(model, TextClassifier):
        inputs = model.encode(texts).cpu()  # (N, L)
    else:
        inputs = texts
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    model.train()
    loss_avg = float("nan")
    n = len(texts)
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g)
        total, count = 0.0, 0
        for start in range(0, n, batch_size):
            b = perm[start : start + batch_size]
            if frozen_minilm:
                logits = model(inputs[b])
            elif isinstance(model, TextClassifier):
                ids = inputs[b]
                ids = ids[:, : max(1, int((ids != 0).sum(1).max()))]  # trim padding
                logits = model(ids.to(model.device))
            else:
                logits = model.logits([inputs[int(i)] for i in b])  # type: ignore[operator]
            loss = nn.functional.cross_entropy(logits, labels[b].to(logits.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
        loss_avg = total / count
        log.info("epoch %d/%d loss %.4f", epoch + 1, epochs, loss_avg)
        if progress is not None:
            progress(f"epoch {epoch + 1}/{epochs} loss {loss_avg:.4f}", (epoch + 1) / epochs)
    model.eval()
    return FitReport(epochs=epochs, train_loss=loss_avg, seconds=time.perf_counter() - t0)


def accuracy(model: Any, texts: Sequence[str], labels: Tensor, batch_size: int = 512) -> float:
    """Share of ``texts`` the model classifies as ``labels``."""
    labels = torch.as_tensor(labels)
    correct = 0
    for i in range(0, len(texts), batch_size):
        p = model.predict_proba(list(texts[i : i + batch_size]))
        correct += int((p.argmax(1).cpu() == labels[i : i + batch_size]).sum())
    return correct / max(1, len(texts))


def adversarial_fit(
    model: TextClassifier | MiniLMClassifier,
    texts: Sequence[str],
    labels: Tensor,
    *,
    recipe: str = "deepwordbug",
    rounds: int = 2,
    epochs: int = 5,
    epochs_per_round: int = 2,
    attack_per_round: int = 1000,
    max_queries: int = 500,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress | None = None,
) -> FitReport:
    """Adversarial data augmentation (see the module docstring).

    Trains for ``epochs`` on the clean data, then ``rounds`` times: attacks
    ``attack_per_round`` random training examples with ``recipe`` (``max_queries`` each),
    adds the successful adversarial texts (true labels) to the training set, and trains
    ``epochs_per_round`` more epochs on the augmented set.

    Returns:
        :class:`FitReport` whose ``rounds`` list, per round, ``attacked``, ``added``
        and ``success_rate`` (the attack's success on the training sample: it should
        fall from round to round if the defense works).
    """
    from advx.text.recipes import create

    attack = create(recipe, model=model, max_queries=max_queries, seed=seed)
    t0 = time.perf_counter()
    texts = list(texts)
    labels = torch.as_tensor(labels).long()
    report = fit(
        model, texts, labels, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
        progress=progress,
    )  # fmt: skip
    aug_texts, aug_labels = list(texts), labels.clone()
    g = torch.Generator().manual_seed(seed + 1)
    for r in range(rounds):
        idx = torch.randperm(len(texts), generator=g)[:attack_per_round].tolist()
        res = attack(model, [texts[i] for i in idx], labels[idx])
        adv = [(x.adversarial, x.y) for x in res if x.succeeded]
        aug_texts += [a for a, _ in adv]
        aug_labels = torch.cat([aug_labels, torch.tensor([y for _, y in adv], dtype=torch.long)])
        summary = res.summary()
        report.rounds.append(
            {"round": r + 1, "attacked": len(idx), "added": len(adv),
             "success_rate": summary["success_rate"]}
        )  # fmt: skip
        log.info("adversarial round %d: %s", r + 1, report.rounds[-1])
        if progress is not None:
            progress(f"round {r + 1}/{rounds}: added {len(adv)} adversarial texts", (r + 1) / rounds)
        more = fit(
            model, aug_texts, aug_labels, epochs=epochs_per_round, lr=lr / 2,
            batch_size=batch_size, seed=seed + r + 1,
        )  # fmt: skip
        report.epochs += more.epochs
        report.train_loss = more.train_loss
    report.seconds = time.perf_counter() - t0
    return report
