"""The same policies evaluated both ways: one evaluation per model, as a run of the per-process path does it
(``Evaluator.evaluate``), and all at once, as the batched engine does (``evaluate_together`` with one batched
forward pass a step). The policies are a publication's target agents of one strategy at step 0, built from
one shipped bundle (``finetune``: the bundle's policy, the same in every seed), so both ways step the same
episodes: the returns must agree, and the times differ by the engines alone. A grid's evaluation times
differ by more: there each engine evaluates the policies it trained, and where an episode's length depends
on the policy (LunarLander's do) so does the cost of evaluating it.

    python benchmarks/evaluation_throughput.py [--publication docs/results/lunarlander] [--target moon]
        [--strategy finetune] [--seeds 10] [--rounds 2] [--step-ended-envs]

Prints each round's seconds both ways and their ratio (the rounds alternate which way goes first), the
environment steps one evaluation of every seed took each way, then the ratio of the totals.
``--step-ended-envs`` evaluates as rltransfer did before an environment whose episode has ended was paused
(each steps on until the last episode of its wave ends): the same returns, more steps.
"""

from __future__ import annotations

import argparse
import time
from typing import cast

import torch
from stable_baselines3 import PPO

from rltransfer.agents.batched_ppo import BatchedPPO
from rltransfer.bundle import load_bundle
from rltransfer.envs import MultiTaskVecEnv
from rltransfer.envs.multitask import vector_env
from rltransfer.evaluation import Evaluator
from rltransfer.evaluation_together import evaluate_together
from rltransfer.hardware import this_machine
from rltransfer.transferring import build_target_agent, eval_env_factory
from rltransfer.validation import setup_of


def env_steps(evaluators: list[Evaluator]) -> int | None:
    """The steps the evaluators' environments took: what every environment's ``Monitor`` counted (an episode's
    steps, and those an environment took after its episode ended, which no return counts); None where a
    family's vector build steps them (its ``Monitor``s are there for the spaces and never step)."""
    envs = [ev._env for ev in evaluators if ev._env is not None]
    if any(vector_env(env) is not None for env in envs):
        return None
    return sum(sum(env.get_attr("total_steps")) for env in envs)


def arguments() -> argparse.Namespace:
    """The command line, checked; ``--step-ended-envs`` applied."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publication", default="docs/results/lunarlander")
    ap.add_argument("--target", default="moon")
    ap.add_argument("--strategy", default="finetune")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--step-ended-envs", action="store_true", help="do not pause envs whose episode has ended")
    args = ap.parse_args()
    if args.seeds < 1 or args.rounds < 1:
        ap.error("--seeds and --rounds must be at least 1")
    if args.step_ended_envs:
        MultiTaskVecEnv.can_pause = property(lambda self: False)  # type: ignore[method-assign,assignment]
    return args


def main() -> None:
    args = arguments()
    torch.set_num_threads(1)
    setup = setup_of(f"{args.publication}/config.yaml")
    bundle = load_bundle(f"{args.publication}/bundles/pretrain-seed-0")
    task = setup.family.task(args.target)
    models = [
        cast(PPO, build_target_agent(setup.config, setup, bundle, task, args.strategy, s)[0]) for s in range(args.seeds)
    ]
    episodes = setup.config.evaluation.episodes
    make_env = eval_env_factory(setup, bundle, args.target, episodes)

    def evaluators(defer: bool) -> list[Evaluator]:
        out = [Evaluator(make_env, 1, 1, episodes, True, float, seed=s) for s in range(args.seeds)]
        for ev in out:
            ev.defer = defer
        return out

    engine = BatchedPPO(models)
    totals = [0.0, 0.0]
    print(f"{args.seeds} seeds of {args.target}/{args.strategy}, {episodes} episodes each, one evaluation:")
    for n in range(args.rounds):  # alternating which way goes first: the machine's drift charged to both
        alone, together = evaluators(defer=False), evaluators(defer=True)
        for model, ev in zip(models, together):
            ev.evaluate(model, 0)  # left pending, for evaluate_together
        seconds = {}
        for way in ("one by one", "together") if n % 2 == 0 else ("together", "one by one"):
            start = time.perf_counter()
            if way == "one by one":
                for model, ev in zip(models, alone):
                    ev.evaluate(model, 0)
            else:
                evaluate_together([(k, ev, m) for k, (ev, m) in enumerate(zip(together, models))], engine.predict)
            seconds[way] = time.perf_counter() - start
        if [ev.curve["return"] for ev in alone] != [ev.curve["return"] for ev in together]:
            raise SystemExit("the two ways' returns differ: they did not evaluate the same episodes")
        totals[0] += seconds["one by one"]
        totals[1] += seconds["together"]
        print(
            f"round {n}: one by one {seconds['one by one']:.2f} s, together {seconds['together']:.2f} s: "
            f"{seconds['one by one'] / seconds['together']:.2f}x"
        )
    alone_steps, together_steps = env_steps(alone), env_steps(together)
    if alone_steps is None or together_steps is None:
        print("env steps: not counted (the family's vector build steps the environments)")
    else:
        print(f"env steps of one evaluation of every seed: {alone_steps:,} one by one, {together_steps:,} together")
    where = this_machine()  # the CPU kind (vendor, torch's kernels): it decides the speed as it decides the bits
    print(
        f"over {args.rounds} round(s): {totals[0]:.2f} s against {totals[1]:.2f} s, {totals[0] / totals[1]:.2f}x ({where})"
    )


if __name__ == "__main__":
    main()
