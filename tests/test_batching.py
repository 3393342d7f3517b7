"""The library's batching path (``attack_dataset``) and per-example randomness: results do
not depend on how the work is cut (batch size, offsets, resume), memory stays flat, files
get the user's umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from advx.attacks import Attack, AttackResult, SweepResult, attack_dataset, create
from advx.attacks.rng import ExampleRng
from advx.errors import InputError
from advx.io import atomic_path, atomic_write_text, make_temp_dir
from advx.models.adapter import Classifier
from advx.targets import QUERY_HOOK, Target, WhiteBox


@pytest.fixture(scope="module")
def digits40(digits_data):
    return digits_data[2][:40], digits_data[3][:40]


def _by_batches(
    attack: Attack, target: Target, x: Tensor, y: Tensor, bs: int, **kw: Any
) -> AttackResult:
    r = attack_dataset(attack, target, (x, y), batch_size=bs, progress=False, **kw)
    assert isinstance(r, AttackResult)  # one eps: one result
    return r


# ------------------------------------------------------------------- batch-size invariance
@pytest.mark.parametrize(
    ("slug", "settings", "scores"),
    [
        ("pgd", {"eps": 0.15, "steps": 5}, False),  # random start
        ("square", {"eps": 0.15, "max_queries": 60}, True),
    ],
)
def test_same_seed_same_adversarials_at_any_batch_size(
    digits_mlp, digits40, slug, settings, scores
):
    x, y = digits40
    atk = create(slug, **settings)
    target = WhiteBox(digits_mlp).as_scores() if scores else WhiteBox(digits_mlp)
    ref = atk(target, x, y)  # one call over everything
    for bs in (1, 7, 32):
        got = _by_batches(atk, target, x, y, bs)
        assert torch.equal(got.x_adv, ref.x_adv), bs  # bitwise
        assert torch.equal(got.status, ref.status) and torch.equal(got.queries, ref.queries)
    other = create(slug, **{**settings, "seed": 1})(target, x, y)
    assert not torch.equal(other.x_adv, ref.x_adv)  # the seed does matter


def test_l2_pgd_agrees_across_batch_sizes_up_to_matmul_rounding(digits_mlp, digits40):
    # the random starts are bitwise equal; an l2 step keeps the gradient's magnitudes,
    # and BLAS rounds a (1, d) product differently from an (n, d) one in the last bits
    x, y = digits40
    atk = create("pgd", eps=1.0, norm="l2", steps=3)
    ref = atk(WhiteBox(digits_mlp), x, y)
    for bs in (1, 7):
        got = _by_batches(atk, WhiteBox(digits_mlp), x, y, bs)
        assert torch.allclose(got.x_adv, ref.x_adv, atol=1e-5, rtol=0)
        assert torch.equal(got.status, ref.status)


def test_random_targets_follow_the_example_not_the_batch(digits_mlp, digits40):
    x, y = digits40
    atk = create("fgsm", eps=0.3)
    ref = atk(WhiteBox(digits_mlp), x, y, targets="random")
    got = _by_batches(atk, WhiteBox(digits_mlp), x, y, 7, targets="random")
    assert got.targets is not None and ref.targets is not None
    assert torch.equal(got.targets, ref.targets) and bool((ref.targets != y).all())
    assert len(set(ref.targets.tolist())) > 3  # really random, not "next"


def test_index_offset_selects_the_examples_streams(digits_mlp, digits40):
    x, y = digits40
    atk = create("pgd", eps=0.15, steps=3)
    ref = atk(WhiteBox(digits_mlp), x, y)
    part = atk(WhiteBox(digits_mlp), x[10:20], y[10:20], index=10)
    assert torch.equal(part.x_adv, ref.x_adv[10:20])
    shuffled = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    r = atk(WhiteBox(digits_mlp), x[shuffled], y[shuffled], index=shuffled)
    assert torch.equal(r.x_adv, ref.x_adv[shuffled])
    with pytest.raises(InputError, match="index"):
        atk(WhiteBox(digits_mlp), x, y, index=torch.arange(3))


# ------------------------------------------------------------------- the batching path
def test_sources_loader_generator_dataset_agree(digits_mlp, digits40):
    from advx.data.core import ImageDataset

    x, y = digits40
    atk = create("pgd", eps=0.15, steps=3)
    target = WhiteBox(digits_mlp)
    ref = atk(target, x, y)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=9)
    gen = ((x[i : i + 13], y[i : i + 13]) for i in range(0, 40, 13))
    ds = ImageDataset(x=x, y=y, class_names=tuple(str(i) for i in range(10)), name="d")
    for data in (loader, gen, ds):
        got = attack_dataset(atk, target, data, batch_size=5, progress=False)
        assert isinstance(got, AttackResult)
        assert torch.equal(got.x_adv, ref.x_adv), type(data)
        assert got.x_adv.device.type == "cpu"


def test_fixed_class_and_sweeps(digits_mlp, digits40):
    x, y = digits40
    keep = y != 3
    x, y = x[keep], y[keep]
    r = attack_dataset(create("pgd", eps=0.3, steps=10), WhiteBox(digits_mlp), (x, y),
                       targets=3, batch_size=8, progress=False)  # fmt: skip
    assert isinstance(r, AttackResult) and r.targets is not None
    assert bool((r.targets == 3).all()) and r.succeeded.float().mean() > 0.5
    sweep = attack_dataset(create("fgsm", eps=[0.0, 0.2]), WhiteBox(digits_mlp), (x, y),
                           batch_size=8, progress=False)  # fmt: skip
    assert isinstance(sweep, SweepResult)
    assert sweep.success_matrix().shape == (2, len(y)) and not sweep[0].succeeded.any()


class _Small(nn.Module):
    """Raises MemoryError on batches larger than ``limit`` (an out-of-memory stand-in)."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise MemoryError("too big")
        self.sizes.append(x.shape[0])
        out: torch.Tensor = self.inner(x)
        return out


def test_auto_batch_size_halves_on_out_of_memory(digits_mlp, digits40):
    x, y = digits40
    small = _Small(digits_mlp, 12)
    target = WhiteBox(Classifier(small, input_shape=(1, 8, 8), num_classes=10))
    atk = create("pgd", eps=0.15, steps=3)
    sizes: list[int] = []
    got = attack_dataset(atk, target, (x, y), batch_size="auto", progress=False,
                         on_batch=lambda r: sizes.append(len(r)))  # fmt: skip
    assert max(sizes) <= 12 and sum(sizes) == 40 and sizes[0] == 10  # 256 -> 40 -> 20 -> 10
    assert isinstance(got, AttackResult)
    assert torch.equal(got.x_adv, atk(WhiteBox(digits_mlp), x, y).x_adv)
    with pytest.raises(InputError, match="out of memory"):
        tiny = WhiteBox(Classifier(_Small(digits_mlp, 0), input_shape=(1, 8, 8), num_classes=10))
        attack_dataset(atk, tiny, (x, y), batch_size="auto", progress=False)


def test_interrupted_run_resumes_to_the_same_result(digits_mlp, digits40, tmp_path):
    x, y = digits40
    atk = create("pgd", eps=0.15, steps=3)
    target = WhiteBox(digits_mlp)
    ref = atk(target, x, y)
    seen: list[int] = []

    def stop_after_two(r: AttackResult | SweepResult) -> None:
        seen.append(len(r))
        if len(seen) == 2:
            raise KeyboardInterrupt  # Ctrl-C after the second batch was saved

    with pytest.raises(KeyboardInterrupt):
        attack_dataset(atk, target, (x, y), batch_size=8, out=tmp_path, progress=False,
                       on_batch=stop_after_two)  # fmt: skip
    lines = [json.loads(s) for s in (tmp_path / "batches.jsonl").read_text().splitlines()]
    assert [r["start"] for r in lines if r["type"] == "batch"] == [0, 8]
    redone: list[int] = []
    # resumed with another batch size: the saved batches are reused, the rest attacked
    got = attack_dataset(atk, target, (x, y), batch_size=5, out=tmp_path, progress=False,
                         on_batch=lambda r: redone.append(len(r)))  # fmt: skip
    assert isinstance(got, AttackResult)
    assert sum(redone) == 40 - 16 and torch.equal(got.x_adv, ref.x_adv)
    assert torch.equal(got.queries, ref.queries)
    with pytest.raises(InputError, match="other settings"):
        attack_dataset(create("pgd", eps=0.2, steps=3), target, (x, y), out=tmp_path,
                       progress=False)  # fmt: skip


def test_keep_records_drops_inputs_and_queries_are_reported(digits_mlp, digits40):
    x, y = digits40
    counted: list[int] = []
    token = QUERY_HOOK.set(counted.append)
    try:
        r = attack_dataset(create("square", eps=0.15, max_queries=30), WhiteBox(digits_mlp).as_scores(),
                           (x, y), batch_size=16, keep="records", progress=False)  # fmt: skip
    finally:
        QUERY_HOOK.reset(token)
    assert isinstance(r, AttackResult)
    assert r.x_adv.shape == (0, 1, 8, 8) and len(r) == 40
    assert sum(counted) >= int(r.queries.sum())  # every charged query reached the hook


def test_bad_arguments_raise_clear_errors(digits_mlp, digits40):
    x, y = digits40
    atk = create("fgsm", eps=0.1)
    with pytest.raises(InputError, match="batch_size"):
        attack_dataset(atk, WhiteBox(digits_mlp), (x, y), batch_size=0)
    with pytest.raises(InputError, match="keep"):
        attack_dataset(atk, WhiteBox(digits_mlp), (x, y), keep="none")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="Attack"):
        attack_dataset("fgsm", WhiteBox(digits_mlp), (x, y))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="iterable"):
        attack_dataset(atk, WhiteBox(digits_mlp), 42)


_MEMORY = textwrap.dedent(
    """
    import resource, sys, torch
    from torch import nn
    from advx.attacks import attack_dataset, create
    from advx.models.adapter import Classifier
    from advx.targets import WhiteBox
    n, keep = int(sys.argv[1]), sys.argv[2]
    torch.manual_seed(0)
    clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 10)),
                     input_shape=(3, 64, 64), num_classes=10)
    def stream():  # examples made on the fly: the data itself is never all in memory
        g = torch.Generator().manual_seed(1)
        for i in range(0, n, 64):
            yield torch.rand(64, 3, 64, 64, generator=g), torch.randint(0, 10, (64,), generator=g)
    def reset_peak():  # the loop's peak RSS, not the imports' (Linux: clear_refs 5)
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
    def peak_kib():
        try:
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset_peak()
    attack_dataset(create("fgsm", eps=0.03), WhiteBox(clf), stream(), batch_size=64,
                   keep=keep, progress=False)
    print(peak_kib())  # KiB
    """
)


def _peak_kib(n: int, keep: str) -> int:
    # a fixed mmap threshold: glibc's adaptive one otherwise lets freed batches fragment
    # the heap (RSS crept up ~2 MiB per batch here with nothing kept alive), which would
    # hide what this test is about: whether advx keeps anything per batch
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "MALLOC_MMAP_THRESHOLD_": "131072",
    }
    out = subprocess.run([sys.executable, "-c", _MEMORY, str(n), keep], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.split()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_examples():
    # 1024 images of 48 KiB: 48 MiB of adversarials if they were kept
    small, large = _peak_kib(64, "records"), _peak_kib(1024, "records")
    assert large - small < 16 * 1024, (small, large)
    kept = _peak_kib(1024, "all")  # control: keeping the inputs does grow, so the test can fail
    assert kept - small > 40 * 1024, (small, kept)


# ------------------------------------------------------------------- the command line
def test_cli_summary_does_not_depend_on_batch_size(tmp_path):
    from typer.testing import CliRunner

    from advx import training
    from advx.cli import app

    ckpt = tmp_path / "ckpt"
    training.train("linear", "digits", config=training.default_config("linear", "digits", epochs=3),
                   out=ckpt)  # fmt: skip
    stats = []
    for bs in (16, 100):
        res = CliRunner().invoke(app, ["attack", str(ckpt), "--attack", "pgd", "--eps", "0.1",
                                       "--steps", "5", "--n", "100", "--batch-size", str(bs),
                                       "--out", str(tmp_path / f"run{bs}"), "--json"])  # fmt: skip
        assert res.exit_code == 0, res.output
        stats.append(json.loads(res.stdout))
        assert not (tmp_path / f"run{bs}" / "parts").exists()  # per-batch files cleared
    for key in ("clean_accuracy", "robust_accuracy", "success_rate", "median_distance",
                "max_distance", "mean_queries"):  # fmt: skip
        assert stats[0][key] == stats[1][key], key


# ------------------------------------------------------------------- files and the umask
@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_writes_respect_the_umask(tmp_path, umask_027, digits_mlp, digits40):
    assert _mode(atomic_write_text(tmp_path / "a.json", "{}")) == 0o640
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "b.bin") == 0o640 and (tmp_path / "b.bin").read_bytes() == b"x"
    assert _mode(make_temp_dir(tmp_path)) == 0o750
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert (tmp_path / "a.json").read_text() == "{}"  # untouched by the failed write
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["a.json", "b.bin"]
    x, y = digits40
    create("fgsm", eps=0.1)(WhiteBox(digits_mlp), x, y).save(tmp_path / "res")
    assert {_mode(p) for p in (tmp_path / "res").iterdir()} == {0o640}


def test_checkpoints_respect_the_umask(tmp_path, umask_027):
    from advx import training

    out = tmp_path / "ckpt"
    config = training.default_config("linear", "digits", epochs=1)
    training.train("linear", "digits", config=config, out=out)
    assert _mode(out) == 0o750  # was 0700 (mkdtemp)
    assert {_mode(p) for p in out.iterdir() if p.is_file()} == {0o640}


def test_example_rng_streams():
    a = ExampleRng(5, torch.arange(100, 110))
    b = ExampleRng(5, torch.tensor([104]))
    assert torch.equal(a.rand((6,))[4], b.rand((6,))[0])
    assert torch.equal(a.rand((6,))[4], b.rand((6,))[0])  # the second draws agree too
    assert not torch.equal(
        a.rand((6,))[4], ExampleRng(5, torch.tensor([104]), stream=1).rand((6,))[0]
    )
    sub = a.subset(torch.tensor([1, 2]))
    sub.normal((3,))
    assert a.counter.tolist() == [3, 4, 4, 3, 3, 3, 3, 3, 3, 3]  # the view advanced its rows
    u = ExampleRng(0, torch.arange(2000)).rand((50,), dtype=torch.float64)
    assert u.dtype == torch.float64 and 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.std()) - 12**-0.5) < 0.01
    z = ExampleRng(0, torch.arange(2000)).normal((50,))
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    k = ExampleRng(0, torch.arange(5000)).randint(2, 9, (4,))
    counts = torch.bincount(k.flatten() - 2, minlength=7).float() / k.numel()
    assert k.min() == 2 and k.max() == 8 and float((counts - 1 / 7).abs().max()) < 0.01
    s = ExampleRng(0, torch.arange(3000)).signs((10,), dtype=torch.float16)
    assert s.dtype == torch.float16 and set(s.unique().tolist()) == {-1.0, 1.0}
