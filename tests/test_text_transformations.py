"""Transformations propose valid candidates: one word changed, by the right kind of edit;
synonyms are WordNet's (checked against NLTK's reader); words parse losslessly."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advx.errors import AccessError, InputError
from advx.text.embeddings import WordEmbeddings
from advx.text.goal import Goal, Scorer
from advx.text.sentence import Sentence, is_word
from advx.text.transformations import (
    CHAR_EDITS,
    HOMOGLYPHS,
    KEYBOARD,
    CharEdit,
    Composite,
    EmbeddingNeighbours,
    GradientFlip,
    WordNetSynonyms,
    char_edits,
    describe,
)
from advx.text.wordnet import LEXNAMES, WordNet
from tests._text_helpers import GradientBoW, LinearBoW

WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC", min_size=2, max_size=10)


@given(st.text(max_size=80))
@settings(max_examples=200, deadline=None)
def test_parse_is_lossless(text):
    s = Sentence.parse(text)
    assert s.text == text
    assert len(s.gaps) == len(s.words) + 1
    assert all(is_word(w) for w in s.words)


def test_parse_keeps_urls_and_mentions_out_of_words():
    s = Sentence.parse("@united I can't fly http://t.co/x #fail!")
    assert s.words == ("I", "can't", "fly", "fail")
    assert s.replace(2, "soar").text == "@united I can't soar http://t.co/x #fail!"
    assert s.replace(2, "soar").changed == frozenset({2})


def _osa(a: str, b: str) -> int:
    """Optimal-string-alignment distance (Levenshtein plus adjacent transposition)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


@given(WORDS)
@settings(max_examples=60, deadline=None)
def test_char_edits_change_exactly_one_character(word):
    for kind in CHAR_EDITS:
        out = char_edits(word, kind)
        assert len(out) == len(set(out)) and word not in out
        for w in out:
            assert is_word(w), (kind, w)
            if kind in ("substitute", "keyboard", "homoglyph"):
                assert len(w) == len(word)
                assert sum(a != b for a, b in zip(w, word, strict=True)) == 1
            elif kind == "insert":
                assert len(w) == len(word) + 1
                assert any(w[:j] + w[j + 1 :] == word for j in range(len(w)))
            elif kind == "delete":
                assert len(w) == len(word) - 1
                assert any(word[:j] + word[j + 1 :] == w for j in range(len(word)))
            else:  # swap: one adjacent transposition
                assert len(w) == len(word) and sorted(w) == sorted(word)
                assert _osa(w, word) == 1


@given(WORDS, st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_random_char_edit_is_one_of_the_listed_edits(word, seed):
    from advx.text.transformations import random_char_edit

    for kind in CHAR_EDITS:
        w = random_char_edit(word, kind, random.Random(seed))
        listed = char_edits(word, kind)
        assert (w is None and not listed) or w in listed


def test_char_edit_specifics():
    assert char_edits("cat", "swap") == ["act", "cta"]
    assert set(char_edits("ab", "delete")) == {"a", "b"}
    assert "g" in KEYBOARD["f"] and "f" in KEYBOARD["g"]
    # adjacency on a keyboard is symmetric
    assert all(a in KEYBOARD[b] for a, near in KEYBOARD.items() for b in near)
    glyphs = char_edits("cool", "homoglyph")
    assert "c\u043eol" in glyphs and all(w != "cool" for w in glyphs)
    assert all(HOMOGLYPHS[c] != c for c in HOMOGLYPHS)
    with pytest.raises(InputError):
        char_edits("cat", "scramble")
    with pytest.raises(InputError):
        CharEdit(kinds=("scramble",))


def test_char_edit_random_one_is_seeded_and_one_per_kind():
    t = CharEdit()
    s = Sentence.parse("terrible service today")
    a = [c.text for c in t(s, [0, 1], rng=random.Random(3))]
    b = [c.text for c in t(s, [0, 1], rng=random.Random(3))]
    assert a == b and 1 <= len(a) <= 2 * len(t.kinds)
    for c in t(s, [0, 1], rng=random.Random(3)):
        assert c.diff_count(s) == 1 and c.changed <= {0, 1}
    # words shorter than min_length are left alone
    assert t(Sentence.parse("I x"), [0, 1], rng=random.Random(0)) == []


def test_char_edit_draws_are_distinct_seeded_edits_of_each_kind():
    s = Sentence.parse("terrible service")
    t = CharEdit(draws=5)
    a = [c.text for c in t(s, [0], rng=random.Random(7))]
    assert a == [c.text for c in t(s, [0], rng=random.Random(7))]  # seeded
    assert len(a) == len(set(a))  # distinct (the base drops repeats too)
    for kind in t.kinds:  # each kind contributes up to 5 of its own edits
        mine = set(char_edits("terrible", kind))
        assert 1 <= sum(c.split()[0] in mine for c in a)
    assert 5 * len(t.kinds) - 4 <= len(a) <= 5 * len(t.kinds)  # kinds may share a word
    # a kind with fewer edits than draws gives them all, without looping forever
    assert {
        c.text
        for c in CharEdit(kinds=("swap",), draws=50)(
            Sentence.parse("ab"), [0], rng=random.Random(0)
        )
    } == {"ba"}
    # draws=1 is the paper's transformer, draw for draw
    one = CharEdit(draws=1)(s, [0, 1], rng=random.Random(3))
    assert [c.text for c in one] == [c.text for c in CharEdit()(s, [0, 1], rng=random.Random(3))]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="draws"):
            CharEdit(draws=bad)  # type: ignore[arg-type]  # non-int draws: the error path
    assert describe(CharEdit()) == "char-edit(swap,substitute,delete,insert)"
    assert describe(CharEdit(draws=5)).endswith("; 5 draws)")
    assert describe(CharEdit(random_one=False)).endswith("; every edit)")


@pytest.fixture(scope="module")
def nltk_wordnet(tmp_path_factory):
    """NLTK's own WordNet reader over the same database, with the lexnames file it needs
    (written from advx's LEXNAMES): the reference for the synonym tests."""
    nltk = pytest.importorskip("nltk")
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    src = WordNet.default().root
    d = tmp_path_factory.mktemp("wordnet")
    for f in os.listdir(src):
        if f.startswith(("index.", "data.")) or f.endswith(".exc"):
            shutil.copy(src / f, d / f)
    Path(d, "lexnames").write_text("".join(f"{i:02d}\t{n}\t{i}\n" for i, n in enumerate(LEXNAMES)))
    nltk.data.path.append(str(d))
    # NLTK 3.9+ tries to map WordNet versions through a separately installed corpus; the
    # database here is 3.0 already, so no mapping is needed.
    orig = WordNetCorpusReader.map_wn
    WordNetCorpusReader.map_wn = lambda self, version="wordnet": None
    try:
        yield WordNetCorpusReader(str(d), None)
    finally:
        WordNetCorpusReader.map_wn = orig
        nltk.data.path.remove(str(d))


@pytest.mark.slow  # NLTK's reader takes ~20 s to index WordNet
@pytest.mark.parametrize(
    "word",
    ["good", "loved", "cars", "better", "running", "happy", "geese", "saddest", "delays",
     "flight", "worse", "axes", "women", "driverless", "terrible", "trust"],
)  # fmt: skip
def test_synonyms_are_wordnet_synonyms(nltk_wordnet, word):
    wn = WordNet.default()
    own = {word} | {b for p in "nvar" for b in nltk_wordnet._morphy(word, p)}
    ref = {
        lemma.lower()
        for s in nltk_wordnet.synsets(word)
        for lemma in s.lemma_names()
        if "_" not in lemma and lemma.lower() not in own
    }
    assert set(wn.synonyms(word)) == ref
    for p in "nvar":
        assert set(wn.morphy(word, p)) == set(nltk_wordnet._morphy(word, p))
    for syn in WordNet.default().synsets(word)[:3]:
        assert syn.lexname == nltk_wordnet.synset_from_pos_and_offset(syn.pos, syn.offset).lexname()


def test_known_wordnet_synonyms():
    wn = WordNet.default()
    assert {"auto", "automobile", "machine", "motorcar"} <= set(wn.synonyms("cars"))
    assert {"glad", "felicitous"} <= set(wn.synonyms("happy"))
    assert "detest" in wn.synonyms("hated") and "hate" not in wn.synonyms("hated")
    assert wn.morphy("geese", "n") == ["goose"] and wn.morphy("cars", "n") == ["car"]
    assert wn.synonyms("the") == [] and wn.parts_of_speech("quickly") == {"r"}
    car = wn.synsets("car")[0]
    assert car.lexname == "noun.artifact" and "automobile" in car.words


def test_wordnet_transformation_proposes_cased_synonyms():
    t = WordNetSynonyms()
    s = Sentence.parse("The Car broke")
    out = t(s, [1], rng=random.Random(0))
    words = {c.words[1] for c in out}
    assert {"Automobile", "Auto"} <= words
    assert all(c.diff_count(s) == 1 and w[0].isupper() for c, w in zip(out, words, strict=False))
    assert "bad" in WordNet.default().antonyms("good")
    with pytest.raises(Exception, match="wordnet-base"):
        WordNet(root="/nonexistent")


def test_embedding_neighbours_and_composite():
    space = WordEmbeddings(
        ["good", "great", "fine", "bad"],
        torch.tensor([[1.0, 0.0], [0.95, 0.1], [0.7, 0.7], [-1.0, 0.0]]),
    )
    t = EmbeddingNeighbours(space=space, k=2, min_cos=0.5)
    s = Sentence.parse("Good day")
    assert [c.text for c in t(s, [0], rng=random.Random(0))] == ["Great day", "Fine day"]
    assert t(s, [1], rng=random.Random(0)) == []  # out of vocabulary
    comp = Composite(parts=(t, CharEdit(kinds=("swap",), random_one=False)))
    texts = [c.text for c in comp(s, [0], rng=random.Random(0))]
    assert texts[:2] == ["Great day", "Fine day"] and "oGod day" in texts
    assert len(texts) == len(set(texts))
    # reports (and the bench's result cache) tell configurations apart
    assert describe(t) == "EmbeddingNeighbours(k=2, min_cos=0.5)"
    assert describe(EmbeddingNeighbours(space=space, k=2, min_cos=0.3)) != describe(t)
    assert describe(GradientFlip(top_n=3)) == "GradientFlip(top_n=3)"
    assert describe(GradientFlip(neighbours=space, min_cos=0.3)) == (
        "GradientFlip(top_n=5, k=50, min_cos=0.3)"
    )


def test_gradient_flip_matches_first_order_gain():
    model = GradientBoW(
        {"bad": [2.0, -1.0], "awful": [3.0, -2.0], "nice": [-1.0, 2.0], "ok": [0.0, 0.5],
         "fine": [-0.5, 1.0]},
    )  # fmt: skip
    s = Sentence.parse("bad ok")
    scorer = Scorer(model, Goal(label=0))
    out = GradientFlip(top_n=100)(s, [0, 1], rng=random.Random(0), scorer=scorer)
    # closed form: gain(i -> v) = (E_v - E_i) . (p - e_y), p = softmax(bias + sum E)
    p = model.logits_of("bad ok").softmax(0).float()
    g = p - torch.tensor([1.0, 0.0])
    table, vocab, _ = model.embedding_table()
    expect = []
    for i, w in enumerate(("bad", "ok")):
        for v, word in enumerate(vocab):
            if word != w:
                expect.append((float((table[v] - table[vocab.index(w)]) @ g), i, word))
    expect.sort(key=lambda t: -t[0])
    assert [(c.diff_count(s), c.text) for c in out][:3] == [
        (1, " ".join(word if j == i else s.words[j] for j in range(2))) for _, i, word in expect[:3]
    ]
    assert scorer.queries == 1  # one gradient
    with pytest.raises(AccessError):
        GradientFlip()(
            s, [0], rng=random.Random(0), scorer=Scorer(LinearBoW({"a": [0, 1]}), Goal(0))
        )
