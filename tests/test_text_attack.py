"""The text attack on hand-checkable models: known greedy answers, exact query counts,
budgets honoured, seeds reproducible, bad inputs rejected with clear errors."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import torch

from advx.attacks.result import Status
from advx.errors import AccessError, ConfigError, InputError
from advx.text import constraints as C
from advx.text import recipes
from advx.text.attack import TextAttack
from advx.text.result import TextAttackResults, diff_html, word_diff
from advx.text.search import BeamSearch, GreedySearch
from advx.text.transformations import CharEdit, GradientFlip
from tests._text_helpers import DictSwap, GradientBoW, LinearBoW

# logits [negative, positive]; "movie" and unknown words contribute nothing
REVIEW = LinearBoW(
    {"terrible": [2.0, 0.0], "boring": [1.0, 0.0], "awful": [0.5, 0.0], "dreadful": [1.5, 0.0],
     "slow": [0.0, 1.2], "dull": [0.8, 0.0], "movie": [0.0, 0.0], "great": [0.0, 3.0]},
)  # fmt: skip
SWAPS = DictSwap({"terrible": ["dreadful", "awful"], "boring": ["dull", "slow"]})
STOP = (C.NoRepeat(), C.StopwordsUntouched())


def test_greedy_search_finds_the_hand_computed_answer():
    # importance by [UNK]: terrible (p_neg 0.953 -> 0.731) > boring (-> 0.881) > movie (0);
    # terrible: awful (p_neg 0.818) beats dreadful (0.924); boring: slow flips the label
    # (logits [0.5, 1.2]); queries = 1 original + 3 importance + 2 + 2 candidates.
    model = LinearBoW({w: REVIEW.table[REVIEW.index[w]].tolist() for w in REVIEW.words})
    attack = TextAttack(transformation=SWAPS, constraints=STOP, search=GreedySearch(ranking="unk"))
    res = attack(model, ["The movie was terrible and boring"], [0])
    r = res[0]
    assert r.status == Status.SUCCEEDED
    assert r.adversarial == "The movie was awful and slow"
    assert (r.words_changed, r.num_words, r.queries) == (2, 6, 8)
    assert r.pred_adv == 1 and math.isclose(r.conf_adv, 1 / (1 + math.exp(-0.7)), rel_tol=1e-5)
    assert model.calls == r.queries + 2  # plus the framework's clean check and final check
    assert [(s.old, s.new) for s in r.diff() if s.changed] == [
        ("terrible", "awful"),
        ("boring", "slow"),
    ]


def test_query_budget_is_honoured_and_ends_the_search():
    attack = TextAttack(transformation=SWAPS, constraints=STOP, max_queries=4)
    r = attack(REVIEW, ["The movie was terrible and boring"], [0])[0]
    assert r.status == Status.FAILED and r.queries == 4
    assert r.adversarial == "The movie was terrible and boring"
    one = TextAttack(transformation=SWAPS, constraints=STOP, max_queries=6)(
        REVIEW, ["The movie was terrible and boring"], [0]
    )[0]
    assert one.queries == 6 and one.words_changed == 1  # only terrible's swaps fit
    with pytest.raises(InputError):
        TextAttack(transformation=SWAPS, max_queries=0)


def test_misclassified_texts_are_skipped_not_attacked():
    res = TextAttack(transformation=SWAPS, constraints=STOP)(
        REVIEW, ["a great movie", "The movie was boring"], [0, 0]
    )
    assert [r.status for r in res] == [Status.SKIPPED, Status.SUCCEEDED]
    assert res[0].queries == 0 and res[0].adversarial == "a great movie"
    s = res.summary()
    assert s["clean_accuracy"] == 0.5 and s["success_rate"] == 1.0 and s["robust_accuracy"] == 0.0


def test_targeted_goal_with_three_classes():
    model = LinearBoW(
        {"fine": [0.0, 1.0, 0.0], "ok": [0.0, 0.9, 0.2], "superb": [0.0, 0.0, 2.0], "good": [0.0, 0.0, 1.0]},
        bias=[0.5, 0.0, 0.0],
    )  # fmt: skip
    attack = TextAttack(
        transformation=DictSwap({"fine": ["ok", "good", "superb"]}), constraints=STOP
    )
    untargeted = attack(model, ["fine"], [1])[0]
    targeted = attack(model, ["fine"], [1], targets=[2])[0]
    assert untargeted.succeeded and untargeted.pred_adv != 1
    assert targeted.succeeded and targeted.pred_adv == 2 and targeted.target == 2
    with pytest.raises(InputError, match="different class"):
        attack(model, ["fine"], [1], targets=[1])


def test_beam_search_and_hotflip_greedy_on_gradient_model():
    # gain(bad -> v) = (E_v - E_bad) . (p - e_0) is largest for "good"; "day" is unknown
    model = GradientBoW(
        {"bad": [2.0, 0.0], "good": [0.0, 2.0], "fine": [0.0, 1.0], "ok": [0.0, 0.5]}
    )
    attack = TextAttack(
        transformation=GradientFlip(top_n=1),
        constraints=(C.NoRepeat(),),
        search=BeamSearch(beam_width=1),
    )
    r = attack(model, ["bad day"], [0])[0]
    assert r.adversarial == "good day" and r.queries == 3  # original, gradient, candidate
    with pytest.raises(AccessError, match="gradients"):
        attack(LinearBoW({"bad": [1.0, 0.0]}), ["bad day"], [0])
    # a wider beam on a black-box transformation reaches the same flip
    beam = TextAttack(transformation=SWAPS, constraints=STOP, search=BeamSearch(beam_width=2))
    b = beam(REVIEW, ["The movie was terrible and boring"], [0])[0]
    assert b.succeeded and b.words_changed <= 2


WORDS = ["service", "flight", "delayed", "terrible", "great", "crew", "seats", "love",
         "awful", "staff", "food", "late", "amazing", "bag", "lost", "thanks"]  # fmt: skip


def _random_model_and_texts(seed: int, n: int = 12):
    g = random.Random(seed)
    weights = {w: [g.uniform(-1, 1), g.uniform(-1, 1)] for w in WORDS}
    model = LinearBoW(weights)
    texts = [" ".join(g.choice(WORDS) for _ in range(g.randint(3, 14))) for _ in range(n)]
    labels = model.predict_proba(texts).argmax(1).tolist()
    return model, texts, labels


@pytest.mark.parametrize("share", [0.1, 0.25])
def test_an_attack_never_changes_more_words_than_its_budget(share):
    model, texts, labels = _random_model_and_texts(1)
    budget = C.MaxWordsChanged(share=share)
    for slug in ("deepwordbug", "pwws"):
        attack = recipes.create(slug, max_words_share=share, seed=3)
        for r in attack(model, texts, labels):
            assert r.words_changed <= budget.budget(r.num_words)
            assert r.words_changed == sum(s.changed for s in word_diff(r.original, r.adversarial))


def test_seed_reproducibility():
    model, texts, labels = _random_model_and_texts(2)
    a = recipes.create("deepwordbug", seed=5)(model, texts, labels)
    b = recipes.create("deepwordbug", seed=5)(model, texts, labels)
    c = recipes.create("deepwordbug", seed=6)(model, texts, labels)
    key = [(r.adversarial, r.queries, r.status) for r in a]
    assert key == [(r.adversarial, r.queries, r.status) for r in b]
    assert key != [(r.adversarial, r.queries, r.status) for r in c]
    # an example's result does not depend on the other examples of the call
    alone = recipes.create("deepwordbug", seed=5)(model, texts[3:4], labels[3:4])[0]
    assert (alone.adversarial, alone.queries) == (a[3].adversarial, a[3].queries)


def test_deepwordbug_edits_are_one_char_per_word():
    model, texts, labels = _random_model_and_texts(3)
    res = recipes.create("deepwordbug")(model, texts, labels)
    assert any(r.succeeded for r in res)
    for r in res:
        for seg in r.diff():
            if seg.changed:
                assert C.levenshtein(seg.old, seg.new) <= 2  # one edit (a swap is two)


def test_bad_inputs_raise_clear_errors():
    attack = TextAttack(transformation=CharEdit())
    bad: list[tuple[Any, Any, str]] = [  # wrong types on purpose: the error paths
        ([""], [0], "empty or blank"),
        (["   "], [0], "empty or blank"),
        ([5], [0], "must be a str"),
        ("a sentence", [0], "list of strings"),
        ([], [], "is empty"),
        (["ok"], [0, 1], "2 entries for 1 texts"),
        (["ok"], [7], "outside"),
        (["ok"], [0.5], "must be an int"),
    ]
    for texts, labels, match in bad:
        with pytest.raises(InputError, match=match):
            attack(REVIEW, texts, labels)
    with pytest.raises(InputError, match="predict_proba"):
        attack(object(), ["ok"], [0])
    with pytest.raises(ConfigError, match="unknown text recipe 'texfooler'"):
        recipes.create("texfooler")
    with pytest.raises(ConfigError, match="unknown settings"):
        recipes.create("deepwordbug", beam_width=3)
    with pytest.raises(InputError):
        GreedySearch(ranking="alphabetical")
    with pytest.raises(InputError, match="neither a helper"):
        attack(REVIEW, ["terrible"], [0], targets="everything")


def test_results_save_load_and_views(tmp_path):
    res = TextAttack(transformation=SWAPS, constraints=STOP)(
        REVIEW, ["The movie was terrible and boring", "a great movie"], [0, 0]
    )
    path = res.save(tmp_path / "r.json")
    back = TextAttackResults.load(path)
    assert back.results == res.results and back.summary() == res.summary()
    html = diff_html(res[0], ("neg", "pos"))
    assert '<del class="advx-del">terrible</del><ins class="advx-ins">awful</ins>' in html
    assert "neg (95%) &rarr; pos (67%)" in html
    evil = res[0].__class__(
        **{**res[0].__dict__, "original": "<b>x</b> y", "adversarial": "<b>x</b> z"}
    )
    assert "<b>" not in diff_html(evil)
    segs = word_diff("I love it", "I really love it")  # different word counts: fallback
    assert "".join(s.old for s in segs) == "I love it"
    assert "".join(s.new for s in segs) == "I really love it"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(Exception, match="cannot read"):
        TextAttackResults.load(tmp_path / "bad.json")
    from rich.console import Console

    console = Console(record=True, width=120)
    from advx.text.result import diff_rich

    console.print(diff_rich(res[0], ("neg", "pos")))
    assert "\u2192awful" in console.export_text()  # old word, arrow, new word


def test_recipe_registry_lists_the_papers():
    assert recipes.names() == ["deepwordbug", "hotflip", "pwws", "textfooler"]
    for slug in recipes.names():
        doc = recipes.get(slug).build.__doc__ or ""
        assert "20" in doc and "Departures" in doc  # cites a year, states departures
    assert recipes.get("hotflip").white_box and not recipes.get("pwws").white_box
    a = recipes.create("pwws", max_queries=50)
    assert a.max_queries == 50 and a.name == "pwws"


def test_pwws_on_hand_model_uses_weighted_saliency():
    # "terrible" has both the larger saliency and the larger best-swap gain, so PWWS swaps
    # it first; WordNet gives "awful", "dreadful", ... for it.
    model = LinearBoW({"terrible": [3.0, 0.0], "food": [0.2, 0.0], "wonderful": [0.0, 2.0],
                       "awful": [0.0, 4.0]})  # fmt: skip
    r = recipes.create("pwws")(model, ["terrible food"], [0])[0]
    assert r.succeeded and r.adversarial.split()[0] in ("awful", "Awful")
    assert r.words_changed == 1
    assert torch.is_tensor(model.predict_proba(["x"]))
