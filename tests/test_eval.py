"""advx.evaluate: worst case over a suite, records, resumption, suites as data."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from advx.attacks import create
from advx.errors import ConfigError, InputError
from advx.evaluate import Suite, SuiteAttack, evaluate, summarize_dir
from advx.evaluate.records import derive_seed, read_records, repair
from advx.evaluate.suites import SUITES, load_suite, resolve
from advx.targets import WhiteBox
from tests._single_thread import single_thread  # noqa: F401  (autouse)


@pytest.fixture(scope="module")
def data(digits_data):
    _, _, x, y = digits_data
    return x[:160], y[:160]


def test_worst_case_equals_sequential_attacks(digits_mlp, data):
    """Differential: the suite's robust flags equal running FGSM, then PGD on the
    survivors, by hand with the same derived seeds (one batch)."""
    x, y = data
    target = WhiteBox(digits_mlp)
    rep = evaluate(target, (x, y), eps=[0.05, 0.1], suite="quick", batch_size=160, probe=0)
    with torch.no_grad():
        correct = digits_mlp(x).argmax(1) == y
    assert rep.clean_accuracy == pytest.approx(float(correct.float().mean()))
    for ei, eps in enumerate((0.05, 0.1)):
        robust = correct.clone()
        sel = robust.nonzero().flatten()
        r1 = create("fgsm", eps=eps, seed=derive_seed(0, 0, ei, 0))(target, x[sel], y[sel])
        robust[sel] = r1.pred_adv == y[sel]
        after_fgsm = float(robust.float().mean())
        sel = robust.nonzero().flatten()
        r2 = create("pgd", eps=eps, steps=20, seed=derive_seed(0, 0, ei, 1))(target, x[sel], y[sel])
        robust[sel] = r2.pred_adv == y[sel]
        assert rep.per_attack["fgsm"][eps] == pytest.approx(after_fgsm)
        assert rep.robust_accuracy[eps] == pytest.approx(float(robust.float().mean()))
        assert rep.per_attack["pgd"][eps] == rep.robust_accuracy[eps]
    # more budget, fewer robust examples; attacks help on an undefended MLP
    assert rep.robust_accuracy[0.1] <= rep.robust_accuracy[0.05] < rep.clean_accuracy


def test_records_stream_and_respect_the_threat_model(digits_mlp, data, tmp_path):
    x, y = data
    out = tmp_path / "run"
    rep = evaluate(
        WhiteBox(digits_mlp), (x, y), eps=0.1, suite="quick", batch_size=50, run_dir=out, probe=0
    )
    recs = list(read_records(out / "results.jsonl"))
    assert [r["batch"] for r in recs if r["type"] == "batch_done"] == [0, 1, 2, 3]
    clean = {r["batch"]: r for r in recs if r["type"] == "clean"}
    assert sum(len(r["idx"]) for r in clean.values()) == 160
    for r in recs:
        if r["type"] != "attack":
            continue
        c = clean[r["batch"]]
        correct = {i for i, p, t in zip(c["idx"], c["pred"], c["y"], strict=True) if p == t}
        assert set(r["idx"]) <= correct  # only still-robust examples are attacked
        assert all(d <= 0.1 + 1e-6 for d in r["distance"])
        assert len(r["idx"]) == len(r["robust"]) == len(r["pred"]) == len(r["queries"])
        if r["step"] == 1:  # PGD runs on what FGSM left
            fgsm = next(
                q
                for q in recs
                if q["type"] == "attack" and q["batch"] == r["batch"] and q["step"] == 0
            )
            left = {i for i, rb in zip(fgsm["idx"], fgsm["robust"], strict=True) if rb}
            assert set(r["idx"]) == left
    # the report is recomputed from disk alone, identically
    again = summarize_dir(out)
    assert again.robust_accuracy == rep.robust_accuracy and again.per_attack == rep.per_attack
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"clean_accuracy", "robust_accuracy", "per_attack", "flags", "seconds"}
    assert summary["robust_accuracy"] == {"0.1": rep.robust_accuracy[0.1]}
    assert not (out / "examples").exists()  # adversarial inputs only when asked


def test_resume_after_stop_equals_uninterrupted(digits_mlp, data, tmp_path):
    x, y = data
    kw: dict[str, Any] = dict(eps=[0.05, 0.1], suite="quick", batch_size=40, probe=0)
    full = evaluate(WhiteBox(digits_mlp), (x, y), run_dir=tmp_path / "full", **kw)
    part = evaluate(
        WhiteBox(digits_mlp), (x, y), run_dir=tmp_path / "r", stop_after_batches=2, **kw
    )
    assert not part.complete and part.batches_done == 2 and part.n == 80
    # simulate a kill in the middle of writing a record of batch 2
    with open(tmp_path / "r" / "results.jsonl", "a") as f:
        f.write('{"type": "attack", "batch": 2, "eps_ind')
    resumed = evaluate(WhiteBox(digits_mlp), (x, y), run_dir=tmp_path / "r", resume=True, **kw)
    assert resumed.complete
    assert resumed.robust_accuracy == full.robust_accuracy
    assert resumed.per_attack == full.per_attack
    keys = [
        (r["type"], r.get("batch"), r.get("eps_index"), r.get("step"))
        for r in read_records(tmp_path / "r" / "results.jsonl")
    ]
    assert len(keys) == len(set(keys))  # nothing was recomputed twice


def test_resume_mid_batch_reuses_recorded_steps(digits_mlp, data, tmp_path):
    """Drop the last records of a finished run: resuming recomputes only those."""
    x, y = data
    kw: dict[str, Any] = dict(eps=0.1, suite="quick", batch_size=80, probe=0)
    out = tmp_path / "r"
    full = evaluate(WhiteBox(digits_mlp), (x, y), run_dir=out, **kw)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    cut = [i for i, ln in enumerate(lines) if '"step":1' in ln][-1]  # PGD of the last batch
    (out / "results.jsonl").write_text("".join(lines[:cut]))
    (out / "summary.json").unlink()
    again = evaluate(WhiteBox(digits_mlp), (x, y), run_dir=out, resume=True, **kw)
    assert again.robust_accuracy == full.robust_accuracy


def test_run_dir_guards(digits_mlp, data, tmp_path):
    x, y = data
    out = tmp_path / "r"
    evaluate(WhiteBox(digits_mlp), (x, y), eps=0.1, suite="quick", run_dir=out, probe=0)
    with pytest.raises(ConfigError, match="--resume"):
        evaluate(WhiteBox(digits_mlp), (x, y), eps=0.1, suite="quick", run_dir=out, probe=0)
    with pytest.raises(ConfigError, match="settings differ.*eps"):
        evaluate(
            WhiteBox(digits_mlp), (x, y), eps=0.2, suite="quick", run_dir=out, resume=True, probe=0
        )
    with pytest.raises(InputError, match="n must be"):
        evaluate(WhiteBox(digits_mlp), (x, y), eps=0.1, n=10_000)
    with pytest.raises(InputError, match="eps"):
        evaluate(WhiteBox(digits_mlp), (x, y), eps=-0.1)


def test_missing_attack_is_reported_not_fatal(digits_mlp, data):
    x, y = data
    suite = Suite(
        "mixed",
        (
            SuiteAttack("no-such-attack"),
            SuiteAttack("pgd", {"steps": 5}),
            SuiteAttack("fgsm", {"bogus": 1}),
        ),
    )
    rep = evaluate(WhiteBox(digits_mlp), (x[:40], y[:40]), eps=0.1, suite=suite, probe=0)
    skipped = {s["slug"]: s["reason"] for s in rep.steps if not s["available"]}
    assert "not available" in skipped["no-such-attack"]
    assert "bogus" in skipped["fgsm"]
    assert list(rep.per_attack) == ["pgd"]
    body = rep.to_json()
    assert {d["attack"] for d in body["skipped_attacks"]} == {"no-such-attack", "fgsm(bogus=1)"}


def test_suites_are_data():
    assert set(SUITES) == {"quick", "standard", "standard-full", "thorough"}
    std = [a.slug for a in SUITES["standard"].attacks]
    assert std[:2] == ["apgd-ce", "apgd-t"] and "square" in std and "fab" in std
    # every registered slug of a built-in suite accepts the suite's settings
    for suite in SUITES.values():
        for r in resolve(suite, norm="linf"):
            if r.access is not None:
                assert r.available, (suite.name, r.step.label, r.reason)
    # black-box steps come after white-box ones (the masking check relies on it)
    for suite in SUITES.values():
        kinds = [r.access for r in resolve(suite, norm="linf") if r.access is not None]
        assert kinds == sorted(kinds, key=lambda a: a != "gradients")


def test_custom_suite_file(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"name": "mine", "attacks": [{"attack": "pgd", "steps": 7}]}))
    s = load_suite(str(p))
    assert s.name == "mine" and s.attacks[0].settings == {"steps": 7}
    p.write_text(json.dumps({"name": "mine", "attacks": [], "extra": 1}))
    with pytest.raises(ConfigError, match="unknown suite keys"):
        load_suite(str(p))
    with pytest.raises(ConfigError, match="set by the evaluation"):
        SuiteAttack("pgd", {"eps": 0.1})
    with pytest.raises(ConfigError, match="unknown suite"):
        load_suite("nope")


def test_save_examples_side_files(digits_mlp, data, tmp_path):
    from safetensors.torch import load_file

    x, y = data
    out = tmp_path / "r"
    evaluate(
        WhiteBox(digits_mlp), (x[:60], y[:60]), eps=0.1, suite="quick", batch_size=30,
        run_dir=out, save_examples=True, probe=0,
    )  # fmt: skip
    files = sorted((out / "examples").glob("*.safetensors"))
    assert files
    for f in files:
        t = load_file(str(f))
        assert torch.equal(t["x"], x[t["idx"]])
        assert float((t["x_adv"] - t["x"]).abs().max()) <= 0.1 + 1e-6


def test_repair_cuts_partial_line(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_text('{"type": "clean", "batch": 0}\n{"type": "cle')
    assert len(list(read_records(p))) == 1
    repair(p)
    assert p.read_text() == '{"type": "clean", "batch": 0}\n'


def test_derive_seed_is_stable():
    assert derive_seed(0, 1, 2, 3) == derive_seed(0, 1, 2, 3)
    assert len({derive_seed(0, b, 0, 0) for b in range(100)}) == 100
    assert 0 <= derive_seed(7, "probe") < 2**63
