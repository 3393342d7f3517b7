"""Text models are Targets: access levels, per-example queries and budgets in the Oracle,
one target resolver, the HTTP text target against a loopback V2 server, and the zoo
finding the text architectures without importing advx.text."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import torch

from advx.attacks.result import Status
from advx.errors import AccessError, ConfigError, InputError, QueryBudgetExceeded
from advx.targets import Access, Oracle, Target
from advx.text import recipes
from advx.text.adapters import HttpTextTarget, TextModelTarget, as_text_target
from advx.text.attack import TextAttack
from advx.text.constraints import StopwordsUntouched
from advx.text.goal import Goal, Scorer
from advx.text.models import TextClassifier, build
from advx.text.search import BeamSearch, GreedySearch
from advx.text.sentence import Sentence
from advx.text.transfer import transfer
from advx.text.transformations import GradientFlip
from tests._text_helpers import DictSwap, GradientBoW, LinearBoW

WEIGHTS = {
    "terrible": [2.0, -1.0],
    "awful": [1.5, -0.5],
    "good": [-1.0, 1.0],
    "great": [-2.0, 2.0],
    "fine": [-0.2, 0.2],
}
REVIEW = LinearBoW(WEIGHTS)
SWAPS = DictSwap({"terrible": ["great", "fine"], "awful": ["good", "fine"], "movie": ["film"]})
TEXTS = ["a terrible movie", "an awful and terrible plot", "a terrible awful movie", "great"]
Y = [0, 0, 0, 0]  # the last is misclassified: skipped, no query charged


# ------------------------------------------------------------------------ access levels
def test_a_zoo_text_model_is_a_white_box_target_and_counts_its_queries():
    torch.manual_seed(0)
    clf = build("bow", vocab=["<pad>", "<unk>", "good", "bad"], class_names=("n", "p"), dim=4)
    assert isinstance(clf, Target) and isinstance(clf, TextClassifier)
    assert clf.access == Access.GRADIENTS and clf.input_shape == (clf.max_len,)
    p = clf.scores(["good", "bad car", "x"])
    assert p.shape == (3, 2) and clf.queries == 3
    assert clf.labels(["good"]).tolist() == [int(p[0].argmax())] and clf.queries == 4
    clf.word_gradients("good car", ["good", "car"], 1)
    assert clf.queries == 5  # one gradient, one query
    black = clf.as_scores()
    assert black.access == Access.SCORES
    assert torch.equal(black.scores(["good", "bad car", "x"]), p)
    with pytest.raises(AccessError, match="word gradients"):
        black.word_gradients("good car", ["good", "car"], 1)
    with pytest.raises(AccessError, match="scores"):
        clf.as_labels().scores(["good"])
    with pytest.raises(InputError, match="list of strings"):
        clf.scores("good")  # a str is a Sequence[str] to mypy: the check is at run time


def test_foreign_text_models_get_the_access_their_interface_grants():
    assert as_text_target(REVIEW).access == Access.SCORES
    white = as_text_target(GradientBoW({"good": [0.0, 1.0]}))
    assert isinstance(white, TextModelTarget) and white.access == Access.GRADIENTS
    assert as_text_target(white) is white
    with pytest.raises(InputError, match="predict_proba"):
        as_text_target(object())
    with pytest.raises(InputError, match="over tensors"):
        as_text_target(Target(input_shape=(2,), num_classes=2))


def test_white_box_recipes_check_the_access_level_not_the_attributes():
    model = GradientBoW({"bad": [1.0, 0.0], "good": [0.0, 1.0], "nice": [0.0, 0.8]})
    attack = TextAttack(transformation=GradientFlip(top_n=3), search=BeamSearch(beam_width=1))
    assert attack.access == Access.GRADIENTS
    assert attack(model, ["bad day"], [0])[0].succeeded
    # the same model seen as a score-only target: refused by its access level, although
    # the wrapped object still has word_gradients
    with pytest.raises(AccessError, match="gradients"):
        attack(as_text_target(model).as_scores(), ["bad day"], [0])
    ranked = TextAttack(transformation=SWAPS, search=GreedySearch(ranking="gradient"))
    assert ranked.access == Access.GRADIENTS
    with pytest.raises(AccessError):
        ranked(REVIEW, ["a terrible movie"], [0])


# ---------------------------------------------------------------- oracle and budgets
def test_queries_are_counted_per_example_by_the_oracle():
    model = LinearBoW(WEIGHTS)
    target = as_text_target(model)
    attack = TextAttack(transformation=SWAPS, constraints=(StopwordsUntouched(),))
    res = attack(target, TEXTS, Y)
    per_example = [r.queries for r in res]
    assert per_example[3] == 0 and res[3].status == Status.SKIPPED
    # every text the model scored is charged to exactly one example, plus the framework's
    # clean and final passes (one text each per example), which are not charged
    assert target.queries == sum(per_example) + 2 * len(TEXTS) == model.calls


def test_scorer_budget_comes_from_the_oracle():
    target = as_text_target(REVIEW)
    oracle = Oracle(target, 3, max_queries=2)
    scorer = Scorer(oracle.view("scores", torch.tensor([1])), Goal(label=0))
    got = scorer.score([Sentence.parse(t) for t in ("good", "fine", "great", "good")])
    assert len(got) == 2 and scorer.exhausted and scorer.remaining == 0
    assert oracle.queries.tolist() == [0, 2, 0]  # charged to example 1 only
    assert scorer.score([Sentence.parse("fine")])[0].sentence.text == "fine"  # notes: free
    with pytest.raises(AccessError, match="word gradients"):
        scorer.word_gradients(Sentence.parse("good"))  # a score-only target
    white = Oracle(as_text_target(GradientBoW(WEIGHTS)), 1, max_queries=1)
    grads = Scorer(white.view("scores"), Goal(label=0))
    grads.word_gradients(Sentence.parse("good"))
    assert white.queries.tolist() == [1]
    with pytest.raises(QueryBudgetExceeded):
        grads.word_gradients(Sentence.parse("good"))
    with pytest.raises(InputError, match="one example"):
        Scorer(oracle.view("scores"), Goal(label=0))


# ------------------------------------------------------------------- target resolver
def test_text_targets_resolve_like_image_targets():
    model = LinearBoW({"a": [1.0, 0.2, 0.0], "b": [0.0, 1.0, 0.0]}, class_names=("x", "y", "z"))
    texts = ["a", "a b", "b", "a a", "b b", "a"]
    probs = model.predict_proba(texts)
    y = probs.argmax(1).tolist()
    attack = TextAttack(transformation=SWAPS, seed=11)
    # "random": one offset per text, in order, from random.Random(seed): the same
    # targets text attacks always drew
    rng = random.Random(11)
    expected = [(v + rng.randrange(1, 3)) % 3 for v in y]
    assert [r.target for r in attack(model, texts, y, targets="random")] == expected
    assert [r.target for r in attack(model, texts, y, targets="next")] == [(v + 1) % 3 for v in y]
    least = probs.argmin(1).tolist()
    assert [r.target for r in attack(model, texts, y, targets="least-likely")] == least
    by_name = attack(model, ["a"], [0], targets="z")  # a class name, as for images
    assert by_name[0].target == 2
    with pytest.raises(InputError, match="different class"):
        attack(model, ["a"], [0], targets=[0])
    with pytest.raises(InputError, match="2 entries for 1 texts"):
        attack(model, ["a"], [0], targets=[1, 2])


# ---------------------------------------------------------------- HTTP (loopback V2)
class _TextServer:
    """A minimal Open Inference Protocol server for one text model, on loopback:
    BYTES inputs, ``predict_proba``/``predict`` outputs, rows served counted."""

    def __init__(self, model: Any, *, labels_only: bool = False, datatype: str = "BYTES"):
        self.model, self.labels_only, self.datatype = model, labels_only, datatype
        self.rows = 0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, obj: Any) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != "/v2/models/tweets":
                    return self._send(404, {"error": "no such model"})
                self._send(
                    200,
                    {
                        "name": "tweets",
                        "inputs": [{"name": "text", "datatype": server.datatype, "shape": [-1]}],
                        "outputs": [{"name": "predict_proba"}, {"name": "predict"}],
                        "parameters": {
                            "num_classes": server.model.num_classes,
                            "class_names": list(server.model.class_names),
                            "labels_only": server.labels_only,
                            "max_rows": 3,
                        },
                    },
                )

            def do_POST(self) -> None:  # noqa: N802
                if self.path == "/v2/repository/index":
                    return self._send(200, [{"name": "tweets", "state": "READY"}])
                req = json.loads(self.rfile.read(int(self.headers["content-length"])))
                tensor = req["inputs"][0]
                if tensor["datatype"] != "BYTES" or tensor["name"] != "text":
                    return self._send(400, {"error": "expected BYTES input 'text'"})
                texts = tensor["data"]
                if len(texts) > 3:
                    return self._send(413, {"error": "at most 3 rows per request"})
                server.requests += 1
                server.rows += len(texts)
                probs = server.model.predict_proba(list(texts))
                if server.labels_only:
                    out = {"name": "predict", "datatype": "INT64", "shape": [len(texts)]}
                    out["data"] = probs.argmax(1).tolist()
                else:
                    out = {"name": "predict_proba", "datatype": "FP32"}
                    out["shape"] = list(probs.shape)
                    out["data"] = probs.flatten().tolist()
                self._send(200, {"model_name": "tweets", "outputs": [out]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _TextServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served() -> Iterator[_TextServer]:
    with _TextServer(REVIEW) as s:
        yield s


def test_an_http_text_model_is_attacked_under_the_same_budget_rules(served):
    attack = TextAttack(transformation=SWAPS, constraints=(StopwordsUntouched(),), max_queries=4)
    local = attack(REVIEW, TEXTS, Y)
    with HttpTextTarget(served.url, retries=0) as remote:
        assert remote.access == Access.SCORES and remote.class_names == ("0", "1")
        assert remote.batch_size == 3  # the server's max_rows
        res = attack(remote, TEXTS, Y)
    # same adversarial texts, same per-example queries, budgets honoured the same way
    key = [(r.adversarial, r.queries, r.status) for r in local]
    assert [(r.adversarial, r.queries, r.status) for r in res] == key
    assert all(r.queries <= 4 for r in res)
    # every text the server scored was counted once, per example or as framework overhead
    assert served.rows == remote.queries == sum(r.queries for r in res) + 2 * len(TEXTS)


def test_http_text_target_access_levels_and_refusals(served):
    url = served.url
    with pytest.raises(InputError, match="list of strings"):
        HttpTextTarget(url, "tweets").scores("terrible")  # a str: refused at run time
    hotflip = TextAttack(transformation=GradientFlip(), search=BeamSearch(beam_width=1))
    with pytest.raises(AccessError, match="gradients"):
        hotflip(HttpTextTarget(url, "tweets"), ["a terrible movie"], [0])
    with _TextServer(REVIEW, labels_only=True) as labels:
        with pytest.raises(AccessError, match="labels only"):
            HttpTextTarget(labels.url, "tweets")
        box = HttpTextTarget(labels.url, "tweets", outputs="auto")
        assert box.access == Access.LABELS
        assert box.labels(["terrible", "great", "good", "fine"]).tolist() == [0, 1, 1, 1]
        with pytest.raises(AccessError, match="needs"):
            TextAttack(transformation=SWAPS)(box, ["a terrible movie"], [0])
        # transfer needs labels only: a labels-only endpoint can be a transfer target
        res = TextAttack(transformation=SWAPS)(REVIEW, TEXTS, Y)
        cell = transfer(res, box)
        assert cell == transfer(res, REVIEW)
    with _TextServer(REVIEW, datatype="FP32") as tensors:
        with pytest.raises(ConfigError, match="not texts"):
            HttpTextTarget(tensors.url, "tweets")


def test_recipes_run_against_an_http_text_model(served):
    attack = recipes.create("deepwordbug", max_queries=30, seed=2)
    local = attack(REVIEW, ["a terrible awful movie", "an awful plot"], [0, 0])
    remote = attack(as_text_target(served.url), ["a terrible awful movie", "an awful plot"], [0, 0])
    assert [(r.adversarial, r.queries) for r in remote] == [
        (r.adversarial, r.queries) for r in local
    ]


# ------------------------------------------------------------------ zoo registration
def test_the_zoo_never_imports_advx_text_but_finds_its_architectures(tmp_path):
    torch.manual_seed(0)
    clf = build("bow", vocab=["<pad>", "<unk>", "good"], class_names=("n", "p"), dim=4)
    from advx.text.models import save

    save(clf, tmp_path / "m")
    code = (
        "import sys, advx.models as m\n"
        "assert 'advx.text' not in sys.modules, 'advx.models imported advx.text'\n"
        f"c = m.load({str(tmp_path / 'm')!r})\n"  # finds 'bow' through advx.text.archs
        "print(type(c.net).__name__, m.ARCHS['wordcnn'].modality)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["BagOfEmbeddings", "text"]


def test_advx_text_attack_takes_a_server_url(served):
    from typer.testing import CliRunner

    from advx.cli import app

    args = ["text", "attack", served.url, "--text", "a terrible awful movie", "--label", "0",
            "--recipe", "deepwordbug", "--max-queries", "30", "--json"]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    local = recipes.create("deepwordbug", max_queries=30, seed=0)(
        REVIEW, ["a terrible awful movie"], [0]
    )
    assert doc["n"] == 1 and doc["mean_queries"] == local[0].queries
    assert doc["success_rate"] == float(local[0].succeeded)
