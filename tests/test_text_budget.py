"""Greedy search under a word cap (issue 15): the last word of the budget goes only to a
change that reaches the goal, words that cannot help are not attacked, and TextFooler's
short-text rule of the released code; all on hand-checkable models."""

from __future__ import annotations

from typing import Any

import torch

from advx.attacks.result import Status
from advx.text import constraints as C
from advx.text import recipes
from advx.text.attack import TextAttack
from advx.text.search import GreedySearch, word_budget
from advx.text.sentence import Sentence
from tests._text_helpers import DictSwap, LinearBoW

# logits [negative, positive]
MODEL = LinearBoW(
    {"terrible": [2.0, 0.0], "boring": [1.0, 0.0], "awful": [1.5, 0.0], "great": [0.0, 4.0],
     "fine": [0.0, 0.5], "movie": [0.0, 0.0]}
)  # fmt: skip
SWAPS = DictSwap({"terrible": ["awful"], "boring": ["great"], "fine": ["fin"], "movie": ["film"]})
ONE_WORD = (C.NoRepeat(), C.StopwordsUntouched(), C.MaxWordsChanged(count=1))


def _attack(**search: Any) -> TextAttack:
    return TextAttack(transformation=SWAPS, constraints=ONE_WORD, search=GreedySearch(**search))


def test_budget_aware_greedy_keeps_the_last_word_for_a_change_that_succeeds():
    # [UNK] importance: terrible (p_neg 0.95 -> 0.73) before boring (-> 0.88).
    # terrible -> awful helps (logit 3 -> 2.5) without flipping; with one word allowed the
    # papers' greedy keeps it and is stuck; budget-aware leaves it and finds boring -> great
    # (logits [2, 4]) on the original.
    text = "terrible and boring"
    plain = _attack()(MODEL, [text], [0])[0]
    assert plain.status == Status.FAILED and plain.adversarial == "awful and boring"
    assert plain.queries == 1 + 2 + 1
    aware = _attack(budget_aware=True)(MODEL, [text], [0])[0]
    assert aware.status == Status.SUCCEEDED and aware.adversarial == "terrible and great"
    assert (aware.words_changed, aware.queries) == (1, 1 + 2 + 1 + 1)


def test_budget_aware_is_the_papers_greedy_when_budget_is_not_binding():
    # with two words allowed, the first change is not the last word: both searches agree
    two = (C.NoRepeat(), C.StopwordsUntouched(), C.MaxWordsChanged(count=2))
    for aware in (False, True):
        attack = TextAttack(
            transformation=SWAPS, constraints=two, search=GreedySearch(budget_aware=aware)
        )
        r = attack(MODEL, ["terrible and boring"], [0])[0]
        assert (r.status, r.adversarial, r.queries) == (Status.SUCCEEDED, "awful and great", 5)


def test_words_at_or_below_min_importance_are_never_attacked():
    # "fine" (positive evidence) has negative importance for a negative text and
    # "movie" zero: with min_importance=0 their swaps (a typo-like unknown word, a
    # neutral word) are never scored
    text = "terrible movie but fine"
    model = LinearBoW({w: MODEL.table[MODEL.index[w]].tolist() for w in MODEL.words})
    attack = TextAttack(
        transformation=SWAPS,
        constraints=(C.NoRepeat(), C.StopwordsUntouched()),
        search=GreedySearch(min_importance=0.0),
    )
    r = attack(model, [text], [0])[0]
    # 1 original + 3 importance (terrible, movie, fine) + 1 (terrible -> awful)
    assert r.queries == 5 and r.adversarial == "awful movie but fine"
    every = TextAttack(transformation=SWAPS, constraints=(C.NoRepeat(), C.StopwordsUntouched()))(
        model, [text], [0]
    )[0]
    assert every.queries == 7  # the papers' greedy also tries movie -> film, fine -> fin
    assert every.adversarial == r.adversarial  # and gains nothing from them


def test_deepwordbug_respects_the_cap_and_is_deterministic_under_a_seed():
    torch.manual_seed(0)
    vocab = [f"w{i}x" for i in range(40)]
    model = LinearBoW({w: torch.randn(2).tolist() for w in vocab})
    g = torch.Generator().manual_seed(1)
    texts = [
        " ".join(vocab[int(j)] for j in torch.randint(0, 40, (int(n),), generator=g))
        for n in torch.randint(4, 25, (12,), generator=g)
    ]
    labels = model.predict_proba(texts).argmax(1).tolist()
    attack = recipes.create("deepwordbug", max_words_share=0.15, seed=7, max_queries=60)
    first = attack(model, texts, labels)
    again = attack(model, texts, labels)
    assert [(r.adversarial, r.queries) for r in first] == [
        (r.adversarial, r.queries) for r in again
    ]
    for r in first:
        assert r.words_changed <= C.MaxWordsChanged(share=0.15).budget(r.num_words)
        assert r.queries <= 60
    assert word_budget(attack.constraints, 20) == 3 and word_budget(attack.constraints, 6) == 1


class _Orthogonal:
    """A sentence encoder under which any two different texts have cosine 0."""

    def encode(self, texts: list[str]) -> torch.Tensor:
        return torch.stack(
            [torch.nn.functional.one_hot(torch.tensor(hash(t) % 997), 997).float() for t in texts]
        )


def test_sentence_similarity_skips_short_texts_only_when_asked():
    short = Sentence.parse("the flight was late again")
    long = Sentence.parse(" ".join(["the flight was late again"] * 4))  # 20 words
    enc = _Orthogonal()
    strict = C.SentenceSimilarity(min_cos=0.8, window=15, encoder=enc)  # type: ignore[arg-type]
    skip = C.SentenceSimilarity(min_cos=0.8, window=15, skip_short=True, encoder=enc)  # type: ignore[arg-type]
    for s in (short, long):
        cand = [s.replace(1, "plane")]
        assert strict.keep(cand, s, s) == [False]
        assert skip.keep(cand, s, s) == [len(s) <= 15]  # short: not checked


def test_deepwordbug_every_edit_finds_the_one_typo_that_flips_under_a_one_word_cap():
    # "goad" is one substitution from "good"; deleting or typo-ing "terrible" never flips.
    # The paper's one random edit per kind almost never lands on it (1 in ~100 per word);
    # every edit (edits_per_kind=None) with the budget-aware greedy must find it.
    model = LinearBoW({"terrible": [2.0, 0.0], "goad": [0.5, 0.0], "good": [0.0, 5.0]})
    text = "terrible goad"
    cap = {"max_words_share": 0.15, "budget_aware": True}
    every = recipes.create("deepwordbug", edits_per_kind=None, max_queries=2000, **cap)
    r = every(model, [text], [0])[0]
    assert r.status == Status.SUCCEEDED and r.adversarial == "terrible good"
    assert r.words_changed == 1
    again = every(model, [text], [0])[0]
    assert (again.adversarial, again.queries) == (r.adversarial, r.queries)
    # the budget is exact: with fewer queries than the first word's edits it stops there
    short = recipes.create("deepwordbug", edits_per_kind=None, max_queries=40, **cap)
    s = short(model, [text], [0])[0]
    assert s.status == Status.FAILED and s.queries == 40
    # several draws per kind: seeded, within the cap and the budget
    five = recipes.create("deepwordbug", edits_per_kind=5, max_queries=30, seed=3, **cap)
    a, b = five(model, [text] * 3, [0] * 3), five(model, [text] * 3, [0] * 3)
    assert [(x.adversarial, x.queries) for x in a] == [(x.adversarial, x.queries) for x in b]
    assert all(x.queries <= 30 and x.words_changed <= 1 for x in a)
    assert five.config["transformation"].endswith("; 5 draws)")


def test_deepwordbug_ranking_option_is_checked_and_gradient_needs_a_white_box_target():
    import pytest

    from advx.errors import AccessError, InputError

    with pytest.raises(InputError, match="ranking"):
        recipes.create("deepwordbug", ranking="alphabetical")
    attack = recipes.create("deepwordbug", ranking="gradient", max_queries=50)
    assert attack.needs_gradients
    with pytest.raises(AccessError):
        attack(MODEL, ["terrible and boring"], [0])  # LinearBoW gives scores only
