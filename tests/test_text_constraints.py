"""Constraints reject what they must and allow what they may."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from advx.errors import InputError
from advx.text import constraints as C
from advx.text.embeddings import WordEmbeddings
from advx.text.sentence import Sentence
from advx.text.transformations import CharEdit


def _lev_reference(a: str, b: str) -> int:
    if not a or not b:
        return len(a) + len(b)
    return min(
        _lev_reference(a[1:], b) + 1,
        _lev_reference(a, b[1:]) + 1,
        _lev_reference(a[1:], b[1:]) + (a[0] != b[0]),
    )


@given(st.text("abc", max_size=6), st.text("abc", max_size=6))
@settings(max_examples=150, deadline=None)
def test_levenshtein_matches_recursive_definition(a, b):
    assert C.levenshtein(a, b) == _lev_reference(a, b) == C.levenshtein(b, a)


ORIG = Sentence.parse("the service was not good and the seats were dirty")


def test_no_repeat_and_stopwords():
    s = ORIG.replace(1, "servise")
    no_repeat = C.NoRepeat().allowed(s, ORIG)
    assert no_repeat is not None and 1 not in no_repeat
    allowed = C.StopwordsUntouched().allowed(s, ORIG)
    assert allowed == {1, 4, 7, 9}  # service, good, seats, dirty
    assert "not" in C.default_stopwords() and "never" in C.default_stopwords()
    assert C.StopwordsUntouched(stopwords=frozenset({"the"})).allowed(ORIG, ORIG) == set(
        range(len(ORIG))
    ) - {0, 6}
    assert C.allowed_positions([C.NoRepeat(), C.StopwordsUntouched()], s, ORIG) == [4, 7, 9]


def test_max_words_changed_budget():
    c = C.MaxWordsChanged(share=0.2)
    assert [c.budget(n) for n in (1, 4, 5, 10, 11, 20)] == [1, 1, 1, 2, 2, 4]
    assert C.MaxWordsChanged(share=0.5, count=2).budget(10) == 2
    one = ORIG.replace(1, "servise")
    two = one.replace(4, "goood")
    three = two.replace(9, "dirt")
    assert c.keep([one, two, three], two, ORIG) == [True, True, False]
    assert c.allowed(two, ORIG) == set()  # budget spent: nothing more may change
    assert c.allowed(one, ORIG) is None
    for bad in (dict(), dict(share=0.0), dict(share=1.5), dict(count=0)):
        with pytest.raises(InputError):
            C.MaxWordsChanged(**bad)


def test_edit_distance():
    per = C.MaxEditDistance(per_word=1)
    a = ORIG.replace(4, "godo")  # a swap is two Levenshtein edits
    b = ORIG.replace(4, "goo")
    assert per.keep([a, b], ORIG, ORIG) == [False, True]
    total = C.MaxEditDistance(total=3)
    ab = b.replace(9, "dirtyy").replace(7, "sets")
    assert total.keep([b, ab, ab.replace(1, "x")], ORIG, ORIG) == [True, True, False]


def test_word_embedding_cosine_and_antonyms():
    space = WordEmbeddings(
        ["good", "fine", "bad"], torch.tensor([[1.0, 0.0], [0.8, 0.6], [-1.0, 0.1]])
    )
    c = C.WordEmbeddingCosine(space=space, min_cos=0.7)
    cands = [ORIG.replace(4, w) for w in ("fine", "bad", "unknownword")]
    assert c.keep(cands, ORIG, ORIG) == [True, False, False]
    na = C.NotAntonym()
    assert na.keep([ORIG.replace(4, "bad"), ORIG.replace(4, "nice")], ORIG, ORIG) == [False, True]
    pos = C.SamePartOfSpeech()
    # "seats" is a noun or a verb; "quickly" only an adverb; words WordNet lacks pass
    assert pos.keep(
        [ORIG.replace(7, "quickly"), ORIG.replace(7, "chairs"), ORIG.replace(7, "lol")], ORIG, ORIG
    ) == [False, True, True]


class _LetterEncoder:
    """A stand-in sentence encoder: normalised letter counts (deterministic, instant)."""

    def encode(self, texts: Sequence[str]) -> Tensor:
        out = torch.zeros(len(texts), 26)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return torch.nn.functional.normalize(out, dim=1)


def test_sentence_similarity_threshold_and_window():
    enc = _LetterEncoder()
    near = ORIG.replace(9, "dirt")
    far = ORIG.replace(9, "xyzzyxqqqqqqqqjjjjjjjjjjjjjjzzzzzzzzzzzzzkkkkkkkkkkkk")
    sim = C.SentenceSimilarity(min_cos=0.9, encoder=enc)
    assert sim.keep([near, far], ORIG, ORIG) == [True, False]
    e = enc.encode([ORIG.text, near.text])
    assert float(e[0] @ e[1]) >= 0.9
    # with a window the compared spans are shorter, so the same change weighs more
    windowed = C.SentenceSimilarity(min_cos=0.97, window=3, encoder=enc)
    whole = C.SentenceSimilarity(min_cos=0.97, encoder=enc)
    mid = ORIG.replace(4, "gd")
    assert whole.keep([mid], ORIG, ORIG) == [True]
    assert windowed.keep([mid], ORIG, ORIG) == [False]
    assert windowed._span(ORIG, 4) == "not good and"


def test_apply_filters_in_order():
    cands = CharEdit(random_one=False)(ORIG, [4], rng=random.Random(0))
    kept = C.apply([C.MaxEditDistance(per_word=1)], cands, ORIG, ORIG)
    assert kept and all(C.levenshtein(k.words[4], "good") <= 1 for k in kept)
    assert len(kept) < len(cands)
    assert C.describe(C.MaxWordsChanged(share=0.1)) == "MaxWordsChanged(share=0.1)"


@pytest.mark.slow
def test_minilm_similarity_orders_meaning():
    from advx.text.minilm import MiniLMEncoder

    enc = MiniLMEncoder.default()
    e = enc.encode(["I love this car", "I adore this car", "The weather is cold in Oslo"])
    assert e.shape == (3, 384)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert float(e[0] @ e[1]) > 0.8 > float(e[0] @ e[2])
    sim = C.SentenceSimilarity(min_cos=0.8)
    s = Sentence.parse("I love this car")
    assert sim.keep([s.replace(1, "adore"), s.replace(3, "Oslo")], s, s)[0]
