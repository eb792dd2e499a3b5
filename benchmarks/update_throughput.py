"""PPO's update alone, one SB3 ``PPO.train`` per seed against the batched engine's one update for all seeds,
by the network's activation.

    python benchmarks/update_throughput.py [--config docs/results/cartpole/config.yaml] [--task very-long-heavy]
        [--seeds 10 ...] [--rounds 4] [--activation tanh relu] [--compile] [--set KEY=VALUE ...]

The same networks, hyperparameters and rollouts each way: ``--seeds`` PPO models of the config's agent
(its encoder, trunks and head for one task, its hyperparameters, ``transfer.n_envs`` envs), built as
pre-training builds a single-task model, each having learnt two rollouts (SB3's ``learn`` one by one, the
batched engine's for all). Then, round after round, each model's ``train()`` (SB3's update: ``n_epochs``
passes over its rollout) one after another, and the batched engine's ``_train`` of as many seeds
(:class:`~rltransfer.agents.batched_ppo.BatchedPPO`), the order alternating between rounds. No env is
stepped while timing: this is the update's arithmetic and per-operation overhead, without rollouts,
evaluations or writing results (``benchmarks/grid_throughput.py --phases`` gives every phase of a grid).

Prints, per activation, the best round's milliseconds a minibatch (SB3: one seed's; batched: all seeds'),
their ratio, and for one update each way the shares of the operators' time (torch's profiler, self time)
taken by the activation's forward and backward and by the matrix products. Batching divides the
per-operation overhead, paid once for all seeds instead of once per seed; the work per element, in the
products and the activation, is the same both ways, so the larger its share of the batched update, the
less is left for batching to shrink. The profiler adds a cost to every operator, more to a small one than
to a large one: its shares are a guide, the wall times the measurement. Comparing activations (``relu``
against ``tanh``) gives what the activation costs in wall time. On an AMD CPU torch's ``tanh`` runs the
math library's generic vector kernel, several nanoseconds an element (``py-spy record --native`` names it).

Several ``--seeds`` (``--seeds 2 5 10 20``) measure each number of seeds in turn and then fit the batched
update's time a minibatch to a line, ``fixed + seeds x per seed`` (least squares over the best rounds): what
the batched update pays once whatever the number of seeds (the per-operation overhead batching divides) and
what each seed adds (the arithmetic on its samples, which batching does not divide). SB3's time a seed's
minibatch over the cost a seed adds is the ratio the update tends to as seeds are added.

``--compile`` times a third way in the same rounds: the batched update with its minibatch's loss (forward
pass, and through it the backward pass) compiled by ``torch.compile`` (TorchInductor's CPU code, which needs a
C++ compiler; the first update, which compiles, is timed apart: TorchInductor caches what it compiled,
under ``TORCHINDUCTOR_CACHE_DIR``, so a later run compiles less). It asks what a compiler would take off
the batched update: fused elementwise work, and a ``tanh`` of its own instead of the math library's; it
prints the share of the compiled update's operator time the matrix products take (library calls still: what
no compiler takes off). The engine does not compile (a compiled update computes other bits, so a batched run
would no longer match itself uncompiled); this only measures the head-room.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from rltransfer.hardware import this_machine

ACTIVATION_OPS = {
    "tanh": ("aten::tanh", "aten::tanh_backward"),
    "relu": ("aten::relu", "aten::threshold_backward"),
    "elu": ("aten::elu", "aten::elu_backward"),
}
"""The operators of each activation's forward and backward pass (torch 2.13's names)."""


def setup(config: str, task: str, activation: str, overrides: list[str]) -> Any:
    """The config (with ``overrides``) for one task, its network's activation ``activation``, validated; a
    config whose agent is not PPO is refused (ValueError)."""
    from rltransfer.validation import setup_of

    sets = [*overrides, f"agent.encoder.activation={activation}", f"source_tasks=[{task}]", "target_tasks=[]"]
    resolved = setup_of(config, sets)
    if resolved.config.agent.algo != "ppo":
        raise ValueError(f"{config}: its agent is {resolved.config.agent.algo}; this benchmark times PPO's update")
    return resolved


def build(resolved: Any, task: str, seeds: int) -> list:
    """``seeds`` PPO models of the resolved config's agent for ``task``, seeds 0, 1, ..., as pre-training
    builds a single-task model."""
    from rltransfer.agent_factory import architecture, build_model
    from rltransfer.pretraining import source_env

    cfg = resolved.config
    models = []
    for seed in range(seeds):
        env = source_env(resolved, cfg.transfer.n_envs)
        models.append(build_model(cfg.agent, env, architecture(cfg.agent, [task], env.layout), seed=seed))
    return models


PRODUCTS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm")
"""The matrix products (the layers' forward and backward)."""


def shares(update: Callable[[], object], activation: str) -> tuple[float, float]:
    """The shares of one update's operator time (torch's profiler, self time) taken by the activation's
    forward and backward and by the matrix products."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        update()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or float("nan")
    act = sum(e.self_cpu_time_total for e in events if e.key in ACTIVATION_OPS[activation])
    products = sum(e.self_cpu_time_total for e in events if e.key in PRODUCTS)
    return act / total, products / total


def cxx() -> str | None:
    """The C++ compiler ``torch.compile``'s CPU code would be built with (TorchInductor's own search:
    ``$CXX``, else ``g++``), or None where it finds none."""
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler

    try:
        return get_cpp_compiler()
    except InvalidCxxCompiler:
        return None


def alternate(ways: list[tuple[str, Callable[[], float]]], rounds: int) -> dict[str, list[float]]:
    """Each way's time in each of ``rounds`` rounds, the ways in their order in even rounds and reversed in
    odd ones."""
    times: dict[str, list[float]] = {name: [] for name, _ in ways}
    for r in range(rounds):
        for name, fn in ways if r % 2 == 0 else ways[::-1]:
            times[name].append(fn())
    return times


def measure(args: argparse.Namespace, activation: str, seeds: int, resolved: Any = None) -> tuple[str, float, float]:
    """The ways' update times with ``activation`` for ``seeds`` seeds, side by side (``args``: the command
    line's; ``resolved``: its :func:`setup` for ``activation``, where the caller has it): the lines to print,
    and the best rounds' milliseconds a minibatch, SB3's (one seed's) and the batched update's (all seeds')."""
    from rltransfer.agents.batched_ppo import BatchedPPO

    if resolved is None:
        resolved = setup(args.config, args.task, activation, args.set)
    sb3 = build(resolved, args.task, seeds)
    m = sb3[0]
    steps = 2 * m.n_steps * m.n_envs  # two rollouts and updates: the buffers full, Adam's moments warm
    for model in sb3:
        model.learn(steps)
    engine = BatchedPPO(build(resolved, args.task, seeds)).learn(steps)
    which = list(range(seeds))
    minibatches = m.n_epochs * -(-m.n_steps * m.n_envs // m.batch_size)

    def one_by_one() -> float:
        start = time.perf_counter()
        for model in sb3:
            model.train()
        return (time.perf_counter() - start) / minibatches / seeds * 1e3

    def timed(engine: BatchedPPO) -> Callable[[], float]:
        def batched() -> float:
            start = time.perf_counter()
            engine._train(which)
            return (time.perf_counter() - start) / minibatches * 1e3

        return batched

    ways = [("sb3", one_by_one), ("batched", timed(engine))]
    if args.compile:
        compiled = BatchedPPO(build(resolved, args.task, seeds)).learn(steps)
        compiled._minibatch = torch.compile(compiled._minibatch)  # type: ignore[method-assign]
        start = time.perf_counter()
        compiled._train(which)  # compiles
        first = time.perf_counter() - start
        ways.append(("compiled", timed(compiled)))
    times = alternate(ways, args.rounds)
    s, b = min(times["sb3"]), min(times["batched"])
    one = shares(m.train, activation)
    every = shares(lambda: engine._train(which), activation)
    lines = [
        f"{activation}: SB3 {s:.2f} ms a minibatch of one seed, batched {b:.2f} ms a minibatch of "
        f"{seeds}: {seeds * s / b:.2f}x (rounds: SB3 {', '.join(f'{t:.2f}' for t in times['sb3'])}; "
        f"batched {', '.join(f'{t:.2f}' for t in times['batched'])})",
        f"  share of the operators' time, SB3 / batched: {activation} {100 * one[0]:.0f}% / {100 * every[0]:.0f}%, "
        f"matrix products {100 * one[1]:.0f}% / {100 * every[1]:.0f}%",
    ]
    if args.compile:
        c = min(times["compiled"])
        products = shares(lambda: compiled._train(which), activation)[1]  # its activation is fused: not an operator
        lines.append(
            f"  batched, loss compiled: {c:.2f} ms a minibatch of {seeds}: {seeds * s / c:.2f}x "
            f"(rounds: {', '.join(f'{t:.2f}' for t in times['compiled'])}); matrix products {100 * products:.0f}% "
            f"of its operators' time; its first update, compiling, {first:.1f} s"
        )
    return "\n".join(lines), s, b


def per_seed(seeds: list[int], sb3: list[float], batched: list[float]) -> str:
    """The batched update's time a minibatch fitted to ``fixed + seeds x per seed`` (least squares), and SB3's
    time a seed's minibatch (the mean of the measurements) over the per-seed cost: the ratio's limit."""
    import numpy as np

    slope, fixed = np.polyfit(seeds, batched, 1)
    one = float(np.mean(sb3))
    by = ", ".join(f"{k}: {t:.2f}" for k, t in zip(seeds, batched))
    return (
        f"  batched ms a minibatch by seeds ({by}) = {fixed:.2f} ms paid once + {1e3 * slope:.0f} us a seed "
        f"(least squares); SB3 {one:.2f} ms a seed: the ratio tends to {one / slope:.2f}x as seeds are added"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="docs/results/cartpole/config.yaml")
    ap.add_argument("--task", default="very-long-heavy")
    ap.add_argument("--seeds", type=int, nargs="+", default=[10])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--activation", nargs="+", default=["tanh", "relu"], choices=sorted(ACTIVATION_OPS))
    ap.add_argument("--compile", action="store_true", help="also time the batched update with its loss compiled")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    args = ap.parse_args()
    if min(args.seeds) < 1 or args.rounds < 1:
        ap.error("--seeds and --rounds must be at least 1")
    if len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds: each number once (got {' '.join(map(str, args.seeds))})")
    if args.compile and cxx() is None:
        ap.error("--compile needs a C++ compiler (torch.compile builds its CPU code with one): TorchInductor "
                 "found none (it looks for $CXX, else g++)")  # fmt: skip
    resolved = {}
    for activation in args.activation:  # a wrong config, task or override: said before anything is timed
        try:
            resolved[activation] = setup(args.config, args.task, activation, args.set)
        except Exception as err:  # the config's own message (a ConfigError, a missing file, not PPO)
            ap.error(str(err))
    torch.set_num_threads(1)
    where = this_machine()  # the CPU kind (vendor, torch's kernels): it decides the speed as it decides the bits
    print(f"{' / '.join(map(str, args.seeds))} seeds of {args.config} on {args.task}, {args.rounds} rounds ({where})")
    for activation in args.activation:
        sb3, batched = [], []
        for seeds in args.seeds:
            lines, s, b = measure(args, activation, seeds, resolved[activation])
            print(lines if len(args.seeds) == 1 else f"{seeds} seeds, {lines}", flush=True)
            sb3.append(s)
            batched.append(b)
        if len(args.seeds) > 1:
            print(per_seed(args.seeds, sb3, batched), flush=True)


if __name__ == "__main__":
    main()
