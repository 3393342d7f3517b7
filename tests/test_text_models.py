"""Text models: shapes, padding invariance, gradients against finite differences,
checkpoints (vocabulary stored, tampering refused, MiniLM head without its encoder),
a trained model that beats the majority class, adversarial augmentation."""

from __future__ import annotations

import json
import random

import pytest
import torch

from advx.errors import CheckpointError, ConfigError
from advx.text import recipes
from advx.text.embeddings import MINILM_SYNONYM_COS, WordEmbeddings
from advx.text.models import TextClassifier, build, load, save
from advx.text.sentence import Sentence
from advx.text.wordnet import WordNet
from tests._text_helpers import trained_bow

VOCAB = ["<pad>", "<unk>", "good", "bad", "car", "very", "the", "!", "drive"]


@pytest.mark.parametrize("arch", ["bow", "wordcnn", "lstm"])
def test_word_models_are_padding_and_batch_invariant(arch):
    torch.manual_seed(0)
    m = build(arch, vocab=VOCAB, class_names=("neg", "pos"), dim=8)
    texts = ["good car", "the very bad car drive !", "x"]
    p = m.predict_proba(texts)
    assert p.shape == (3, 2) and torch.allclose(p.sum(1), torch.ones(3))
    alone = torch.cat([m.predict_proba([t]) for t in texts])
    assert torch.allclose(p, alone, atol=1e-6)  # a text's score ignores its batch
    with m.clf.frozen_eval(), torch.no_grad():
        ids = m.encode(texts)
        padded = torch.nn.functional.pad(ids, (0, 20))
        assert torch.allclose(m.clf(ids), m.clf(padded), atol=1e-6)
    assert m.encode(texts, pad_to_max=True).shape == (3, m.max_len)
    with pytest.raises(ConfigError, match="vocabulary"):
        build(arch, vocab=None, class_names=("a", "b"))


@pytest.mark.parametrize("arch", ["bow", "wordcnn", "lstm"])
def test_word_gradients_match_finite_differences(arch):
    torch.manual_seed(1)
    m = build(arch, vocab=VOCAB, class_names=("neg", "pos"), dim=6)
    m.clf.double()
    text = "The car is very good!"
    words = Sentence.parse(text).words
    ids, grads = m.word_gradients(text, words, 1)
    tokens = [VOCAB[i] if i >= 0 else None for i in ids.tolist()]
    assert tokens == ["the", "car", "<unk>", "very", "good"]  # "is" is not in the vocabulary
    enc = m.encode([text])
    with m.clf.frozen_eval():
        e = m.net.embedding(enc).detach()

        def loss(e_: torch.Tensor) -> float:
            logits = m.net.from_embeddings(e_, enc != 0)
            return float(torch.nn.functional.cross_entropy(logits, torch.tensor([1])))

        g = torch.Generator().manual_seed(0)
        for i, j in ((0, 0), (1, 1), (4, 4)):  # word i is token j
            d = torch.randn(e.shape[-1], generator=g, dtype=torch.float64)
            h = 1e-6
            ep, em = e.clone(), e.clone()
            ep[0, j] += h * d
            em[0, j] -= h * d
            fd = (loss(ep) - loss(em)) / (2 * h)
            assert fd == pytest.approx(float(grads[i].double() @ d), rel=1e-3, abs=1e-6)
    _, neg = m.word_gradients(text, words, 1, targeted=True)
    assert torch.allclose(neg, -grads)


@pytest.fixture(scope="module")
def bow():
    return trained_bow()


def test_trained_bow_beats_the_majority_class_and_roundtrips(bow, tmp_path):
    from advx.data import load as load_data
    from advx.text.training import accuracy

    model, path = bow
    assert isinstance(model, TextClassifier) and model.arch == "bow"
    test = load_data("tweets-binary", "test").head(800)
    majority = max(float((test.y == c).float().mean()) for c in (0, 1))
    acc = accuracy(model, test.texts, test.y)
    assert acc > majority + 0.04, (acc, majority)
    info = json.loads((path / "model.json").read_text())
    assert info["arch"] == "bow" and "vocab" not in info["arch_kwargs"]
    assert (path / "vocab.json").is_file() and info["training"]["vocab_min_freq"] == 2
    out = save(model, tmp_path / "copy", meta={"note": "copy"})
    again = load(out)
    probe = list(test.texts[:20])
    assert torch.equal(model.predict_proba(probe), again.predict_proba(probe))
    vocab = json.loads((out / "vocab.json").read_text())
    vocab["tokens"][5], vocab["tokens"][6] = vocab["tokens"][6], vocab["tokens"][5]
    (out / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError):
        load(out)
    with pytest.raises(CheckpointError):
        load(tmp_path / "nothing-here")


def test_hotflip_on_trained_bow_stays_in_the_neighbourhood(bow):
    from advx.data import load as load_data

    model, _ = bow
    test = load_data("tweets-binary", "test").head(25)
    res = recipes.create("hotflip", model=model, max_queries=200)(model, list(test.texts), test.y)
    assert any(r.succeeded for r in res)
    space, wn = WordEmbeddings.minilm(), WordNet.default()
    vocab = set(model.net.tokens())
    for r in res:
        assert r.queries <= 200
        for seg in r.diff():
            if seg.changed:
                assert seg.new.lower() in vocab
                assert (space.cosine(seg.old, seg.new) or -1) >= MINILM_SYNONYM_COS - 1e-6
                assert seg.new.lower() not in wn.antonyms(seg.old)


def _toy_reviews(n: int, seed: int):
    """Short reviews whose label is set by one adjective (so the model leans on it)."""
    from advx.data import TextDataset

    g = random.Random(seed)
    pos, neg = ["good", "great", "lovely", "superb"], ["bad", "awful", "poor", "nasty"]
    nouns = ["car", "ride", "trip", "seat", "driver", "road"]
    texts, ys = [], []
    for _ in range(n):
        y = g.randrange(2)
        texts.append(f"the {g.choice(nouns)} was {g.choice(pos if y else neg)}")
        ys.append(y)
    return TextDataset("toy-reviews", tuple(texts), torch.tensor(ys), ("negative", "positive"))


def test_adversarial_augmentation_adds_attack_outputs():
    from advx.text.training import TextAugmentation, train
    from advx.training import default_config

    data, test = _toy_reviews(300, 0), _toy_reviews(100, 1)
    cfg = default_config("bow", "toy", epochs=4, lr=2e-2)
    aug = TextAugmentation(attack="deepwordbug", rounds=2, attack_per_round=60, max_queries=50)
    res = train("bow", data, test=test, config=cfg, arch_kwargs={"dim": 8}, adversary=aug)
    assert res.test_accuracy > 0.95
    log = res.info["adversarial"]["rounds_log"]
    assert res.info["adversarial"]["adv"] == "deepwordbug" and len(log) == 2
    assert log[0]["attacked"] == 60 and 0 < log[0]["succeeded"] <= log[0]["added"] <= 60
    # failed attempts are outputs too: the second round, on a more robust model, fails often
    assert log[1]["succeeded"] < log[1]["added"]
    assert log[1]["train_size"] == 300 + log[0]["added"] + log[1]["added"]
    with pytest.raises(ConfigError):
        TextAugmentation(attack="nonsense")
    with pytest.raises(ConfigError):
        TextAugmentation(rounds=0)


@pytest.mark.slow
def test_minilm_checkpoint_holds_only_the_head(tmp_path):
    from advx.text.training import train
    from advx.training import default_config

    cfg = default_config("minilm", "tweets-binary", limit=300, epochs=20)
    from advx.data import load as load_data

    test = load_data("tweets-binary", "test").head(200)
    res = train("minilm", "tweets-binary", config=cfg, out=tmp_path / "m", test=test)
    assert res.test_accuracy > 0.72
    assert (tmp_path / "m" / "model.safetensors").stat().st_size < 10_000  # head only
    ref = json.loads((tmp_path / "m" / "encoder.json").read_text())
    assert ref["id"].endswith("all-MiniLM-L6-v2") and len(ref["sha256"]) == 64
    m = load(tmp_path / "m")
    probe = list(test.texts[:10])
    assert torch.allclose(m.predict_proba(probe), TextClassifier(res.model).predict_proba(probe))
    # white-box pieces of MiniLM line up with its WordPiece tokens
    ids, grads = m.word_gradients("I love this car", ["I", "love", "this", "car"], 1)
    assert (ids >= 0).all() and grads.shape == (4, 384) and grads.abs().sum() > 0
    r = recipes.create("hotflip", model=m, max_queries=100)(m, ["I hate this car"], [0])
    assert r[0].queries <= 100
    random.seed(0)
