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


def test_a_short_measurement_times_both_ways(load_benchmark):
    ut = load_benchmark("update_throughput")
    args = argparse.Namespace(
        config=str(ROOT / "docs/results/cartpole/config.yaml"), task="medium", seeds=2, rounds=2, set=[]
    )
    line = ut.measure(args, "relu")
    assert (
        line.startswith("relu: SB3 ")
        and "a minibatch of 2: " in line
        and "matrix products" in line
        and "share of" in line
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--config", str(ROOT / "configs/pendulum.yaml"), "--task", "mid"], "this benchmark times PPO's update"),
        (["--task", "no-such-task"], "no-such-task"),
        (["--seeds", "0"], "--seeds and --rounds must be at least 1"),
    ],
)
def test_bad_input_is_refused_with_a_message_before_timing(argv, says, load_benchmark, monkeypatch, capsys):
    ut = load_benchmark("update_throughput")
    monkeypatch.setattr("sys.argv", ["update_throughput.py", *argv])
    with pytest.raises(SystemExit) as stop:
        ut.main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
