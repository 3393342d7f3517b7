"""Training text models, plainly and adversarially (what ``advx train`` runs for the
text architectures).

:func:`fit_text` trains a :class:`~advx.text.models.TextClassifier` with the one training
loop of advx (:func:`advx.training.fit`) on padded token ids; a frozen ``minilm`` trains
only its head, on sentence embeddings computed once and cached on disk.

:func:`adversarial_fit` is the text form of adversarial training: data augmentation with
attack outputs (Jin et al. 2020, §5; Ren et al. 2019, §5): train, attack a sample of the
training set with a recipe, add the attack's outputs with their true labels, train on
the augmented set; repeated for a few rounds. The papers add only the successful
adversarial texts; advx adds every output the attack changed, failed attempts too. On
``tweets-binary`` the successes are mostly positive tweets (negative ones rarely flip),
so adding only them taught ``wordcnn`` that typos (unknown words) mean *positive*, and
DeepWordBug's success on 200 test tweets rose from 28% to 41%; with the failed,
still-negative attempts added as well it fell to 17% (robust accuracy 64% -> 73%, clean
test accuracy 86.3% -> 86.2%). The gain is on negative tweets (20% -> 5% flipped);
positive ones flip more easily than before (69% -> 81%): augmentation mostly moves what
an unknown word means to the model, as the class mix of the added texts dictates. Unlike image adversarial training
the attack does not run on every batch: a text attack is a discrete search, thousands
of times slower than a PGD step.

:func:`train` is the whole pipeline (vocabulary, model, training, test accuracy,
checkpoint) and returns :class:`advx.training.TrainResult`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from advx.data.core import ImageDataset, TextDataset
from advx.errors import ConfigError, InputError
from advx.io import atomic_path
from advx.text.models import MiniLMNet, TextClassifier
from advx.training import (
    History,
    StepInfo,
    TrainConfig,
    TrainResult,
    default_config,
    fit,
    select_training,
)

log = logging.getLogger(__name__)

VOCAB_MIN_FREQ = 2  # tokens seen once are <unk>: the model learns what an unknown word is


def cache_dir() -> Path:
    """Where derived data is cached: ``$ADVX_CACHE_DIR``, else ``~/.cache/advx``."""
    env = os.environ.get("ADVX_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "advx"


def minilm_features(texts: Sequence[str], *, cache: bool = True) -> Tensor:
    """MiniLM sentence embeddings ``(N, 384)`` of ``texts``, cached on disk (safetensors)
    under :func:`cache_dir` by a hash of the texts and of the encoder file's size and
    mtime, so retraining a head costs seconds."""
    from safetensors.torch import load_file, save_file

    from advx.text.minilm import MiniLMEncoder, model_dir

    h = hashlib.sha256()
    st = (model_dir() / "model.safetensors").stat()
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\x00")
    path = cache_dir() / f"minilm-features-{h.hexdigest()[:24]}.safetensors"
    if cache and path.is_file():
        try:
            feats = load_file(str(path))["features"]
            if tuple(feats.shape) == (len(texts), 384):
                return feats
        except Exception:  # noqa: BLE001 - a damaged cache is simply recomputed
            log.warning("ignoring damaged feature cache %s", path)
    feats = MiniLMEncoder.default().encode(list(texts))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, fsync=False) as tmp:
            save_file({"features": feats.contiguous()}, str(tmp))
    return feats


def fit_text(
    model: TextClassifier,
    texts: Sequence[str],
    labels: Tensor,
    *,
    config: TrainConfig,
    on_step: Callable[[StepInfo], None] | None = None,
) -> History:
    """Train ``model`` on ``texts`` / ``labels (N,)`` with :func:`advx.training.fit`.

    Args:
        config: an :class:`advx.training.TrainConfig`.
        on_step: progress callback (:class:`advx.training.StepInfo`).

    Returns:
        The :class:`advx.training.History`. The model is left in eval mode.
    """
    from advx.models.adapter import Classifier

    texts = list(texts)
    labels = torch.as_tensor(labels).long()
    if not texts or len(texts) != len(labels):
        raise InputError(f"got {len(texts)} texts and {len(labels)} labels; need equal, > 0")
    net = model.net
    if isinstance(net, MiniLMNet) and net.frozen:
        feats = minilm_features(texts)  # (N, 384)
        head = Classifier(net.head, input_shape=(feats.shape[1],), num_classes=model.num_classes)
        history = fit(head, (feats, labels), config=config, on_step=on_step)
    else:
        ids = model.encode(texts, pad_to_max=True)  # (N, max_len)
        history = fit(model.clf, (ids, labels), config=config, on_step=on_step)
    model.clf.eval()
    return history


def accuracy(model: Any, texts: Sequence[str], labels: Tensor, *, batch_size: int = 512) -> float:
    """Share of ``texts`` that ``model.predict_proba`` assigns to ``labels``."""
    labels = torch.as_tensor(labels)
    if not len(texts):
        raise InputError("no texts to evaluate")
    correct = 0
    for i in range(0, len(texts), batch_size):
        p = model.predict_proba(list(texts[i : i + batch_size]))
        correct += int((p.argmax(1).cpu() == labels[i : i + batch_size]).sum())
    return correct / len(texts)


def adversarial_fit(
    model: TextClassifier,
    texts: Sequence[str],
    labels: Tensor,
    *,
    config: TrainConfig,
    recipe: str = "deepwordbug",
    rounds: int = 2,
    attack_per_round: int = 1000,
    round_epochs: int = 1,
    max_queries: int = 500,
    on_step: Callable[[StepInfo], None] | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[History, list[dict[str, Any]]]:
    """Adversarial data augmentation (see the module docstring).

    Trains for ``config.epochs`` on the clean texts, then ``rounds`` times: attacks
    ``attack_per_round`` random training texts with ``recipe`` (``max_queries`` each) on
    the current model, adds every text the attack changed (successful or not: see the
    module docstring) with its true label, and trains ``round_epochs`` more epochs on
    everything so far.

    Returns:
        ``(history, rounds)``: the last :class:`advx.training.History` and, per round,
        ``attacked``, ``succeeded``, ``added``, ``success_rate`` (of the attack on the
        training sample, measured before that round's training: it falls when the
        defense works) and ``train_size`` (texts trained on after the round).
    """
    from advx.text.recipes import create

    if rounds < 1 or attack_per_round < 1 or round_epochs < 1:
        raise ConfigError("rounds, attack_per_round and round_epochs must be >= 1")
    attack = create(recipe, model=model, max_queries=max_queries, seed=config.seed)
    texts = list(texts)
    labels = torch.as_tensor(labels).long()
    history = fit_text(model, texts, labels, config=config, on_step=on_step)
    aug_texts, aug_labels = list(texts), labels.clone()
    g = torch.Generator().manual_seed(config.seed + 17)
    report: list[dict[str, Any]] = []
    for r in range(rounds):
        idx = torch.randperm(len(texts), generator=g)[:attack_per_round]
        res = attack(model, [texts[int(i)] for i in idx], labels[idx])
        adv = [(x.adversarial, x.y) for x in res if not x.skipped and x.adversarial != x.original]
        aug_texts += [a for a, _ in adv]
        aug_labels = torch.cat([aug_labels, torch.tensor([y for _, y in adv], dtype=torch.long)])
        entry = {
            "round": r + 1,
            "attacked": len(idx),
            "succeeded": sum(x.succeeded for x in res),
            "added": len(adv),
            "success_rate": res.summary()["success_rate"],
            "train_size": len(aug_texts),
        }
        report.append(entry)
        log.info("adversarial augmentation round %s", entry)
        if on_round is not None:
            on_round(entry)
        cfg = replace(config, epochs=round_epochs, seed=config.seed + r + 1)
        history = fit_text(model, aug_texts, aug_labels, config=cfg, on_step=on_step)
    return history, report


@dataclass(frozen=True, kw_only=True)
class TextAugmentation:
    """The text adversary of ``advx train --adv RECIPE``: adversarial data augmentation
    with a text recipe (see :func:`adversarial_fit`).

    Args:
        attack: recipe slug (``deepwordbug``, ``pwws``, ``textfooler``, ``hotflip``).
        rounds: attack-and-retrain rounds (default 2).
        attack_per_round: training texts attacked per round (default 1000).
        max_queries: per-text budget of each attack (default 500).
        round_epochs: epochs of training after each round (default 1).
    """

    modality: ClassVar[str] = "text"
    attack: str = "deepwordbug"
    rounds: int = 2
    attack_per_round: int = 1000
    max_queries: int = 500
    round_epochs: int = 1

    def __post_init__(self) -> None:
        from advx.text.recipes import get

        get(self.attack)  # unknown recipe -> ConfigError naming the known ones
        for k in ("rounds", "attack_per_round", "max_queries", "round_epochs"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(
                    f"{self.attack} augmentation: {k} must be an integer >= 1, got {v!r}"
                )

    def recipe(self) -> dict[str, Any]:
        """What ``model.json`` records under ``adversarial``."""
        return {"adv": self.attack, "kind": "text-augmentation", "rounds": self.rounds,
                "attack_per_round": self.attack_per_round, "max_queries": self.max_queries,
                "round_epochs": self.round_epochs}  # fmt: skip

    def options(self) -> dict[str, Any]:
        """Keyword settings for :func:`adversarial_fit`."""
        return {"rounds": self.rounds, "attack_per_round": self.attack_per_round,
                "max_queries": self.max_queries, "round_epochs": self.round_epochs}  # fmt: skip


def register_text_adversaries() -> None:
    """Register every text recipe as an adversary of ``advx train --adv NAME``
    (:func:`advx.defenses.adversarial_training.register_adversary`, modality ``text``)."""
    from advx.defenses.adversaries import adversaries, register_adversary
    from advx.text.recipes import get, names

    known = adversaries()
    for slug in names():
        if slug in known:
            continue

        def factory(_slug: str = slug, **settings: Any) -> TextAugmentation:
            return TextAugmentation(attack=_slug, **settings)

        register_adversary(
            slug,
            f"text augmentation with {slug}: {get(slug).summary}",
            factory,
            settings=("rounds", "attack_per_round", "max_queries", "round_epochs"),
            modality="text",
            runner=_augmentation_runner,
        )


def _augmentation_runner(
    arch: str,
    data: str | TextDataset,
    *,
    adversary: TextAugmentation,
    config: TrainConfig | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    **_ignored: Any,  # world, on_check: single process, no eps ball to check
) -> TrainResult:
    """How ``advx train --adv RECIPE`` trains a text model (see :func:`train`)."""
    return train(
        arch, data, config=config, arch_kwargs=arch_kwargs, out=out, adversary=adversary,
        on_step=on_step,
    )  # fmt: skip


def train(
    arch: str,
    data: str | TextDataset,
    *,
    test: TextDataset | None = None,
    config: TrainConfig | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    adversary: str | TextAugmentation | None = None,
    adv_options: Mapping[str, Any] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Build a text model, train it, measure test accuracy, save it.

    Args:
        arch: ``"bow"``, ``"wordcnn"``, ``"lstm"`` or ``"minilm"``.
        data: a text dataset name (``"tweets-binary"``, ``"tweets"``) or a
            :class:`~advx.data.TextDataset` (training split).
        test: the test split (default: ``load(data, "test")`` for a name).
        config: :class:`advx.training.TrainConfig` (default: the registry's defaults).
        arch_kwargs: architecture options (``dim``, ``hidden``, ...).
        out: checkpoint directory (None: not saved).
        adversary: a :class:`TextAugmentation`, or a recipe slug (``"deepwordbug"``...)
            with ``adv_options``, for adversarial augmentation (:func:`adversarial_fit`);
            None for plain training.
        adv_options: keyword settings of :class:`TextAugmentation` when ``adversary``
            is a slug (``rounds``, ``attack_per_round``, ``max_queries``...).
        on_step: progress callback of the training loop.
        meta: extra JSON values for ``model.json``.

    Returns:
        :class:`advx.training.TrainResult`; ``model`` is the zoo
        :class:`~advx.models.adapter.Classifier` like for every architecture (wrap it
        in :class:`~advx.text.models.TextClassifier` to score texts).
    """
    from advx.data import load
    from advx.data.text import Vocab
    from advx.models import get_arch, save
    from advx.text.models import build

    spec = get_arch(arch)
    test_ds: ImageDataset | TextDataset | None
    if isinstance(data, str):
        name = data
        train_ds = load(data, "train")
        test_ds = load(data, "test") if test is None else test
    else:
        train_ds, name, test_ds = data, getattr(data, "name", "custom"), test
    if spec.modality != "text":
        raise ConfigError(f"{arch!r} is an {spec.modality} model; it cannot train on texts")
    if not isinstance(train_ds, TextDataset) or (
        test_ds is not None and not isinstance(test_ds, TextDataset)
    ):
        raise ConfigError(
            f"{arch!r} is a text model; {name!r} is not a text dataset (use tweets-binary or tweets)"
        )
    config = config or default_config(arch, name)
    subset = select_training(train_ds, config)
    t0 = time.perf_counter()
    kwargs = dict(arch_kwargs or {})
    if arch != "minilm":
        kwargs["vocab"] = Vocab.build(subset.texts, min_freq=VOCAB_MIN_FREQ)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # weight initialisation
        model = build(arch, class_names=train_ds.class_names, **kwargs)
    rounds: list[dict[str, Any]] = []
    aug = (
        TextAugmentation(attack=adversary, **dict(adv_options or {}))
        if isinstance(adversary, str)
        else adversary
    )
    if aug is not None and not isinstance(aug, TextAugmentation):
        raise ConfigError(
            f"text models train adversarially by augmentation with a text recipe "
            f"(--adv deepwordbug, pwws, textfooler, hotflip), not {type(aug).__name__}"
        )
    if aug is not None:
        history, rounds = adversarial_fit(
            model, subset.texts, subset.y, config=config, recipe=aug.attack,
            on_step=on_step, **aug.options(),
        )  # fmt: skip
    else:
        history = fit_text(model, subset.texts, subset.y, config=config, on_step=on_step)
    seconds = time.perf_counter() - t0
    acc = accuracy(model, test_ds.texts, test_ds.y) if test_ds is not None else math.nan
    training = config.to_dict() | {"n_train": len(subset), "seconds": round(seconds, 3)}
    if arch != "minilm":
        training["vocab_min_freq"] = VOCAB_MIN_FREQ
        training["vocab_size"] = len(kwargs["vocab"])
    info: dict[str, Any] = {
        "dataset": name,
        "training": training,
        "seed": config.seed,
        "test_accuracy": None if math.isnan(acc) else round(acc, 6),
        **dict(meta or {}),
    }
    if aug is not None:
        info["adversarial"] = aug.recipe() | {"rounds_log": rounds}
    path = save(model.clf, out, meta=info) if out is not None else None
    history.seconds = seconds
    return TrainResult(model=model.clf, test_accuracy=acc, info=info, history=history, path=path)
