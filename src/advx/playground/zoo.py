"""The models the playground offers, loaded (or trained once and cached) on first use.

Default line-up:

* ``efficientnet-lite0`` — the pretrained ImageNet classifier of :mod:`advx.models`
  (default image model; offered when the installed advx has it), with ``-lite1`` and
  ``-lite2`` for transfer at ImageNet scale when present;
* ``<small>-cnn`` and ``<small>-mlp`` — the zoo's CNN and MLP on a small dataset
  (Fashion-MNIST, or digits when it is not installed), trained with the library's
  training loop and cached;
* ``<small>-cnn-advtrained`` — the same CNN adversarially trained (FGSM with random
  start, Wong et al. 2020) with :func:`advx.defenses.adversarial_train`;
* ``<small>-cnn+squeeze`` — the CNN guarded by a feature-squeezing detector (Xu et al.
  2018) as a :class:`~advx.defenses.RejectingClassifier`;
* ``tweets-bow`` — the bag-of-embeddings sentiment model of ``advx demo`` (text tab);
* any model directory given on the command line (image or text, by its ``model.json``).

Trained models are written under the cache directory (``$ADVX_CACHE_DIR/playground``,
else ``~/.cache/advx/playground``) as ordinary advx checkpoints and reused afterwards.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from advx.errors import InputError

if TYPE_CHECKING:
    from advx.data import ImageDataset

log = logging.getLogger(__name__)

Status = Callable[[str], None]

# small-model training settings: seconds to a minute on two CPU cores, cached afterwards
_SMALL: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"epochs": 1, "limit": 12000, "adv_eps": 0.1},
    "digits": {"epochs": 20, "limit": None, "adv_eps": 0.2},
}
TEXT_DATASET = "tweets-binary"


def default_cache() -> Path:
    """``$ADVX_CACHE_DIR/playground``, else ``~/.cache/advx/playground``."""
    root = os.environ.get("ADVX_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "advx") / "playground"


@dataclass
class ModelEntry:
    """One model on offer.

    Attributes:
        key: identifier used by the page and the API.
        label: what the page shows.
        modality: ``"image"`` or ``"text"``.
        dataset: ``"imagenet"``, ``"fashion-mnist"``, ``"digits"``, ``"tweets-binary"``,
            or the dataset recorded in a user model's ``model.json``.
        role: ``"plain"``, ``"adversarial"`` (adversarially trained), ``"guarded"``
            (a detector in front), or ``"user"`` (from the command line).
        loader: ``loader(status) -> model``; for ``guarded`` a ``(classifier, detector)``.
    """

    key: str
    label: str
    modality: str
    dataset: str
    role: str
    loader: Callable[[Status], Any]
    note: str = ""
    _value: Any = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        """JSON for the page."""
        return {
            "key": self.key,
            "label": self.label,
            "modality": self.modality,
            "dataset": self.dataset,
            "role": self.role,
            "note": self.note,
            "loaded": self._value is not None,
        }


class Zoo:
    """The catalogue: entries by key, each loaded at most once (thread-safe)."""

    def __init__(self, entries: Sequence[ModelEntry]) -> None:
        self.entries: dict[str, ModelEntry] = {}
        for e in entries:
            if e.key in self.entries:
                raise InputError(f"two playground models are called {e.key!r}")
            self.entries[e.key] = e
        self._lock = threading.Lock()

    def entry(self, key: str, modality: str | None = None) -> ModelEntry:
        """The entry ``key``; :class:`InputError` naming the known ones."""
        e = self.entries.get(key)
        if e is None or (modality is not None and e.modality != modality):
            known = [k for k, v in self.entries.items() if modality in (None, v.modality)]
            raise InputError(f"unknown model {key!r}; choose one of {', '.join(known)}")
        return e

    def get(self, key: str, status: Status | None = None) -> Any:
        """The loaded model of ``key`` (loading or training it on first use)."""
        e = self.entry(key)
        with self._lock:
            if e._value is None:
                e._value = e.loader(status or (lambda _m: None))
            return e._value

    def classifier(self, key: str, status: Status | None = None) -> Any:
        """The classifier behind ``key`` (for a guarded entry, the guarded model)."""
        v = self.get(key, status)
        return v[0] if isinstance(v, tuple) else v

    def modules(self, key: str) -> list[nn.Module]:
        """The torch modules evaluated when ``key`` runs (for the job monitor)."""
        v = self.get(key)
        parts = v if isinstance(v, tuple) else (v,)
        out: list[nn.Module] = []
        for p in parts:
            # a TextClassifier runs its network directly: watch that
            m = p.net if hasattr(p, "clf") else p
            if isinstance(m, nn.Module):
                out.append(m)
        return out

    def of(self, modality: str) -> list[ModelEntry]:
        """Entries of one modality, in catalogue order."""
        return [e for e in self.entries.values() if e.modality == modality]


# -- loaders ---------------------------------------------------------------------------
def _cached_train(directory: Path, status: Status, what: str, fit: Callable[[], Any]) -> Any:
    from advx import models

    if (directory / "model.json").exists():
        return models.load(directory)
    status(f"training {what} once (cached in {directory})")
    log.info("training %s into %s", what, directory)
    fit()
    return models.load(directory)


def _small_loader(arch: str, dataset: str, cache: Path) -> Callable[[Status], Any]:
    def load(status: Status) -> Any:
        from advx.training import default_config, train

        s = _SMALL[dataset]
        cfg = default_config(arch, dataset, epochs=s["epochs"], limit=s["limit"], seed=0)
        out = cache / f"{dataset}-{arch}"
        return _cached_train(
            out,
            status,
            f"the {arch} on {dataset}",
            lambda: train(arch, dataset, config=cfg, out=out),
        )

    return load


def _advtrained_loader(dataset: str, cache: Path) -> Callable[[Status], Any]:
    def load(status: Status) -> Any:
        from advx.defenses import adversarial_train, create_adversary
        from advx.training import default_config

        s = _SMALL[dataset]
        cfg = default_config("cnn", dataset, epochs=s["epochs"], limit=s["limit"], seed=0)
        out = cache / f"{dataset}-cnn-advtrained"
        adv = create_adversary("fgsm-rs", eps=s["adv_eps"])
        return _cached_train(
            out,
            status,
            f"an adversarially trained cnn on {dataset}",
            lambda: adversarial_train("cnn", dataset, adversary=adv, config=cfg, out=out),
        )

    return load


def _guarded_loader(
    dataset: str, cache: Path, base: Callable[[Status], Any]
) -> Callable[[Status], Any]:
    def load(status: Status) -> Any:
        from advx.defenses import load_detector, train_detector

        model = base(status)
        path = cache / f"{dataset}-cnn-squeeze"
        if (path / "detector.json").exists():
            return model, load_detector(path, model)
        status("calibrating a feature-squeezing detector once (cached)")
        ds = image_data(dataset, "train")
        det = train_detector(model, ds.x[:2000], ds.y[:2000], kind="squeeze", fpr=0.05)
        det.save(path)
        return model, det

    return load


def _imagenet_loader(name: str) -> Callable[[Status], Any]:
    def load(status: Status) -> Any:
        from advx import models

        status(f"loading {name}")
        return models.pretrained(name)

    return load


def _text_loader(cache: Path) -> Callable[[Status], Any]:
    def load(status: Status) -> Any:
        from advx.text.models import load as load_text
        from advx.training import default_config, train

        out = cache / f"{TEXT_DATASET}-bow"
        if not (out / "model.json").exists():
            status(f"training the bow sentiment model on {TEXT_DATASET} once (cached)")
            cfg = default_config("bow", TEXT_DATASET, epochs=4, limit=3000, seed=0)
            train("bow", TEXT_DATASET, config=cfg, out=out)
        return load_text(out)

    return load


def _user_loader(path: Path, modality: str) -> Callable[[Status], Any]:
    def load(status: Status) -> Any:
        from advx import models

        status(f"loading {path}")
        if modality == "text":
            from advx.text.models import load as load_text

            return load_text(path)
        return models.load(path)

    return load


def image_data(dataset: str, split: str = "test") -> ImageDataset:
    """An image dataset by name (``"imagenet"``: the bundled ``photos``)."""
    from advx.data import ImageDataset, load

    ds = load("photos") if dataset == "imagenet" else load(dataset, split)
    if not isinstance(ds, ImageDataset):
        raise InputError(f"{dataset} is not an image dataset")
    return ds


def imagenet_available() -> list[str]:
    """Pretrained ImageNet models this advx offers (empty when it has none)."""
    from advx import models

    pretrained = getattr(models, "pretrained", None)
    if pretrained is None:
        return []
    names = getattr(models, "PRETRAINED", None)
    listed = list(names) if names else ["efficientnet-lite0"]
    return [n for n in listed if str(n).startswith("efficientnet-lite")]


def small_dataset() -> str:
    """Fashion-MNIST when installed, else scikit-learn's digits."""
    from advx.data import dataset_status

    found = {name: ok for name, ok, _ in dataset_status()}
    return "fashion-mnist" if found.get("fashion-mnist") else "digits"


def default_zoo(
    user_models: Sequence[Path] = (),
    *,
    cache: Path | None = None,
    small: str | None = None,
    imagenet: bool = True,
    text: bool = True,
) -> Zoo:
    """The default catalogue (see the module docstring), user models first.

    Args:
        user_models: model directories written by ``advx train`` (image or text).
        cache: where trained models are kept (default :func:`default_cache`).
        small: the small image dataset (default Fashion-MNIST, or digits without it).
        imagenet: offer the pretrained ImageNet models when available.
        text: offer the tweets sentiment model.
    """
    from advx import models

    cache = cache or default_cache()
    small = small or small_dataset()
    if small not in _SMALL:
        raise InputError(f"the small dataset must be one of {', '.join(_SMALL)}, got {small!r}")
    entries: list[ModelEntry] = []
    for p in user_models:
        info = models.read_info(p)
        arch = str(info.get("arch", "?"))
        spec = models.ARCHS.get(arch)
        modality = spec.modality if spec is not None else "image"
        entries.append(
            ModelEntry(
                key=Path(p).resolve().name,
                label=f"{Path(p).name} ({arch}, yours)",
                modality=modality,
                dataset=str(info.get("dataset", "custom")),
                role="user",
                loader=_user_loader(Path(p), modality),
            )
        )
    if imagenet:
        for name in imagenet_available():
            entries.append(
                ModelEntry(
                    key=name,
                    label=f"{name} (ImageNet, pretrained)",
                    modality="image",
                    dataset="imagenet",
                    role="plain",
                    loader=_imagenet_loader(name),
                )
            )
    short = "fmnist" if small == "fashion-mnist" else small
    cnn = _small_loader("cnn", small, cache)
    eps = _SMALL[small]["adv_eps"]
    entries += [
        ModelEntry(f"{short}-cnn", f"{short} CNN", "image", small, "plain", cnn),
        ModelEntry(
            f"{short}-mlp",
            f"{short} MLP",
            "image",
            small,
            "plain",
            _small_loader("mlp", small, cache),
        ),
        ModelEntry(
            f"{short}-cnn-advtrained",
            f"{short} CNN, adversarially trained (FGSM-RS, eps {eps:g})",
            "image",
            small,
            "adversarial",
            _advtrained_loader(small, cache),
            note=f"trained on FGSM with random start at eps {eps:g} = {round(eps * 255)}/255",
        ),
        ModelEntry(
            f"{short}-cnn+squeeze",
            f"{short} CNN + feature-squeezing detector",
            "image",
            small,
            "guarded",
            _guarded_loader(small, cache, cnn),
            note="a RejectingClassifier: label 'rejected' when the detector fires (5% FPR)",
        ),
    ]
    if text:
        entries.append(
            ModelEntry(
                "tweets-bow",
                "tweets sentiment (bag of embeddings)",
                "text",
                TEXT_DATASET,
                "plain",
                _text_loader(cache),
            )
        )
    return Zoo(entries)
