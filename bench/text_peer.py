"""TextAttack 0.3.11's ``DeepWordBugGao2018`` wrapped around an advx text model, for the
side-by-side DeepWordBug comparison of ``bench/text.py --textattack``.

TextAttack is a peer, run as shipped: its recipe object (transformation, constraints,
greedy search with ``[UNK]`` word importance) is built by ``DeepWordBugGao2018.build``
around a :class:`ModelWrapper` that calls the same advx model the advx attack queries.
Two things are added, both to give the two libraries the same budget:

* a query budget (``goal_function.query_budget``, what TextAttack's ``--query-budget``
  sets);
* a word-change cap: at most ``max(1, floor(share * n))`` words changed, ``n`` the
  tweet's words *as advx counts them*, so both libraries may change the same number of
  words in each tweet (TextAttack counts mention and URL pieces as words, so a share of
  its own count would give it a larger cap; its ``MaxWordsPerturbed(max_percent=...)``
  also floors to zero words on tweets under 7 words).

Offline set-up (``BENCH_TEXTATTACK=1 bench/setup.sh`` does it): TextAttack runs
``nltk.download`` on first import unless its cache holds ``post_install_check_3``, and
its stop-word constraint reads NLTK's ``stopwords/english``. The set-up writes that file
from advx's own list (``src/advx/text/stopwords.txt``), so both libraries leave exactly
the same words untouched; :func:`environment` points ``TA_CACHE_DIR`` and ``NLTK_DATA``
there before TextAttack is imported.

How TextAttack's words differ from advx's (what that does to the comparison): TextAttack
splits on whitespace and keeps ``[\\w'\\-_*@]`` runs, stripping ``@`` at the ends, so
``@united`` is the attackable word ``united`` and ``http://t.co/x1`` is four words
(``http``, ``t``, ``co``, ``x1``); advx keeps mentions and URLs in the gaps, untouched.
TextAttack therefore has more words per tweet (a larger share cap in words, more
importance queries) and may edit airline handles and link pieces. Words changed are
reported three ways: each library's own count, and a neutral one (whitespace-separated
tokens that differ, over the tweet's whitespace tokens) applied to both outputs.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def environment() -> None:
    """Point TextAttack's cache and NLTK's data at the offline copies that set-up made
    in the running virtual environment."""
    venv = Path(sys.prefix)
    os.environ.setdefault("TA_CACHE_DIR", str(venv / "textattack-cache"))
    os.environ.setdefault("NLTK_DATA", str(venv / "nltk_data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    marker = Path(os.environ["TA_CACHE_DIR"]) / "post_install_check_3"
    stop = Path(os.environ["NLTK_DATA"]) / "corpora" / "stopwords" / "english"
    if not marker.is_file() or not stop.is_file():
        raise SystemExit(
            f"TextAttack's offline files are missing ({marker}, {stop}); "
            "run  BENCH_TEXTATTACK=1 bench/setup.sh"
        )


def tokens_changed(original: str, adversarial: str) -> tuple[int, int]:
    """The neutral measure: whitespace-separated tokens of ``adversarial`` that differ from
    ``original`` at the same position, and the number of tokens of ``original``. Both
    libraries keep the text's spacing, so positions line up; a token count change (which
    neither makes) counts the difference in length as changed tokens."""
    a, b = original.split(), adversarial.split()
    changed = sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))
    return changed, len(a)


def edits_outside_words(original: str, adversarial: str) -> bool:
    """True when ``adversarial`` differs from ``original`` outside the words advx may
    attack (in a mention, URL, hashtag sign or punctuation, i.e. in advx's gaps)."""
    from advx.text.sentence import Sentence

    a, b = Sentence.parse(original), Sentence.parse(adversarial)
    return len(a) != len(b) or a.gaps != b.gaps


def run_deepwordbug(
    model: Any, texts: list[str], y: list[int], *, max_queries: int, words_share: float | None,
    seed: int = 0,
) -> list[dict[str, Any]]:  # fmt: skip
    """TextAttack's ``DeepWordBugGao2018`` on each text: one record per text with
    ``status`` (succeeded/failed/skipped), ``adversarial``, ``queries``, TextAttack's own
    words changed and words, and the neutral token measure."""
    environment()
    import numpy as np
    import textattack
    from textattack.attack_recipes import DeepWordBugGao2018
    from textattack.attack_results import SkippedAttackResult, SuccessfulAttackResult
    from textattack.constraints import Constraint
    from textattack.models.wrappers import ModelWrapper

    class Wrapper(ModelWrapper):  # type: ignore[misc]
        def __init__(self, m: Any) -> None:
            self.model = m

        def __call__(self, text_input_list: list[str]) -> Any:
            return self.model.predict_proba(list(text_input_list)).numpy()

    from advx.text.constraints import MaxWordsChanged
    from advx.text.sentence import Sentence

    class WordShare(Constraint):  # type: ignore[misc]
        """At most as many words changed as advx's cap allows on the same original (the
        same number of words for both libraries, whatever each counts as a word)."""

        def __init__(self, share: float) -> None:
            super().__init__(compare_against_original=True)
            self.cap = MaxWordsChanged(share=share)

        def _check_constraint(self, transformed_text: Any, reference_text: Any) -> bool:
            budget = self.cap.budget(len(Sentence.parse(reference_text.text)))
            return len(reference_text.all_words_diff(transformed_text)) <= budget

    recipe = DeepWordBugGao2018.build(Wrapper(model))
    cons = list(recipe.pre_transformation_constraints) + list(recipe.constraints)
    if words_share is not None:
        cons.append(WordShare(words_share))
    attack = textattack.Attack(
        recipe.goal_function, cons, recipe.transformation, recipe.search_method
    )
    attack.goal_function.query_budget = max_queries
    out = []
    for text, label in zip(texts, y, strict=True):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        t0 = time.process_time()
        with torch.no_grad():
            res = attack.attack(text, int(label))
        orig = res.original_result.attacked_text
        adv = res.perturbed_result.attacked_text
        status = (
            "skipped" if isinstance(res, SkippedAttackResult)
            else "succeeded" if isinstance(res, SuccessfulAttackResult) else "failed"
        )  # fmt: skip
        tc, tn = tokens_changed(text, adv.text)
        out.append({
            "status": status, "y": int(label), "original": text, "adversarial": adv.text,
            "queries": int(res.perturbed_result.num_queries),
            "words_changed": len(orig.all_words_diff(adv)), "num_words": len(orig.words),
            "tokens_changed": tc, "num_tokens": tn, "cpu_seconds": time.process_time() - t0,
        })  # fmt: skip
    return out
