"""``benchmarks/update_throughput.py``: PPO's update one seed at a time against the batched engine's. What it
must get right: the operators it sums for an activation and for the matrix products are the ones torch
runs (a renamed operator would silently count nothing), and a short measurement runs both ways."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from rltransfer.agents.encoders import ACTIVATIONS
from rltransfer.agents.stacked import grouped_linear

ROOT = Path(__file__).resolve().parents[1]


def _operators(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_the_operators_it_counts_are_the_ones_torch_runs(activation, load_benchmark):
    ut = load_benchmark("update_throughput")
    assert set(ut.ACTIVATION_OPS) == set(ACTIVATIONS)  # every activation a config may name
    layer = torch.nn.Linear(4, 8)
    weight = torch.randn(3, 8, 4, requires_grad=True)

    def forward_and_backward() -> None:
        x = torch.randn(6, 4)
        y = ACTIVATIONS[activation]()(layer(x)).sum() + grouped_linear(x, weight, None).sum()
        y.backward()

    ran = _operators(forward_and_backward)
    assert set(ut.ACTIVATION_OPS[activation]) <= ran
    assert {"aten::addmm", "aten::bmm"} <= ran & set(ut.PRODUCTS)


def _needs_a_compiler(load_benchmark) -> None:
    if load_benchmark("update_throughput").cxx() is None:
        pytest.skip("torch.compile's CPU code needs a C++ compiler; TorchInductor finds none")


@pytest.mark.parametrize("compiled", [False, True])
def test_a_short_measurement_times_every_way(compiled, load_benchmark):
    if compiled:
        _needs_a_compiler(load_benchmark)
    ut = load_benchmark("update_throughput")
    args = argparse.Namespace(
        config=str(ROOT / "docs/results/cartpole/config.yaml"),
        task="medium",
        rounds=2,
        set=[],
        compile=compiled,
    )
    line, sb3, batched = ut.measure(args, "relu", 2)
    assert sb3 > 0 and batched > 0 and f"SB3 {sb3:.2f} ms" in line and f"batched {batched:.2f} ms" in line
    assert (
        line.startswith("relu: SB3 ")
        and "a minibatch of 2: " in line
        and "matrix products" in line
        and "share of" in line
    )
    assert ("batched, loss compiled: " in line) == compiled
    assert ("% of its operators' time" in line) == compiled
    assert ("its first update, compiling, " in line) == compiled


def test_the_compiled_update_is_the_same_update_to_rounding(load_benchmark):
    """What ``--compile`` times is the batched update, not another one: from the same state, one update
    compiled and one not move every parameter alike, to rounding (not bit for bit: the compiled code rounds
    otherwise)."""
    from rltransfer.agents.batched_ppo import BatchedPPO

    _needs_a_compiler(load_benchmark)
    ut = load_benchmark("update_throughput")
    resolved = ut.setup(str(ROOT / "docs/results/cartpole/config.yaml"), "medium", "tanh", [])
    before, after = [], []
    for compiled in (False, True):
        engine = BatchedPPO(ut.build(resolved, "medium", 2)).learn(256)
        for m in engine.models:
            m._current_progress_remaining = 1.0  # the learning rate's start (its schedule ends at 0)
        if compiled:
            engine._minibatch = torch.compile(engine._minibatch)
        before.append([p.detach().clone() for m in engine.models for p in m.policy.parameters()])
        engine._train([0, 1])
        after.append([p.detach().clone() for m in engine.models for p in m.policy.parameters()])
    for a, b in zip(before[0], before[1], strict=True):
        assert torch.equal(a, b)
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(before[0], after[0], strict=True))  # it trained
    for a, b in zip(after[0], after[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_per_seed_fit_is_the_least_squares_line(load_benchmark):
    """Times on an exact line (1.5 ms once, 0.25 ms a seed) give that line back; SB3's mean over them is the
    limit's numerator: 2.0 / 0.25 = 8x."""
    ut = load_benchmark("update_throughput")
    line = ut.per_seed([2, 4, 10], [1.9, 2.1, 2.0], [2.0, 2.5, 4.0])
    assert "(2: 2.00, 4: 2.50, 10: 4.00) = 1.50 ms paid once + 250 us a seed" in line
    assert "SB3 2.00 ms a seed: the ratio tends to 8.00x" in line


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--config", str(ROOT / "configs/pendulum.yaml"), "--task", "mid"], "this benchmark times PPO's update"),
        (["--task", "no-such-task"], "no-such-task"),
        (["--seeds", "0"], "--seeds and --rounds must be at least 1"),
        (["--seeds", "2", "5", "2"], "--seeds: each number once (got 2 5 2)"),
        (["--compile"], "--compile needs a C++ compiler"),
    ],
)
def test_bad_input_is_refused_with_a_message_before_timing(argv, says, load_benchmark, monkeypatch, capsys):
    import torch._inductor.config

    ut = load_benchmark("update_throughput")
    monkeypatch.setattr("sys.argv", ["update_throughput.py", *argv])
    no_compiler = torch._inductor.config.patch({"cpp.cxx": ("no-such-compiler",)})  # only --compile asks for one
    with no_compiler, pytest.raises(SystemExit) as stop:
        ut.main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
