"""``benchmarks/grid_throughput.py --phases``: where each way's time goes, timed by wrapping the methods of each
phase. What it must get right: a phase inside itself counted once, a phase inside another taken off the
outer one, every method it names still there (a renamed one would silently time nothing), and the
originals back afterwards."""

from __future__ import annotations


def test_a_phase_in_itself_counts_once_and_one_in_another_is_taken_off_the_outer(load_benchmark):
    gt = load_benchmark("grid_throughput")
    now = [0.0]
    phases = gt.Phases(clock=lambda: now[0])

    def evaluate() -> None:
        now[0] += 2.0

    ev = phases._timed("evaluation", evaluate)

    def inner() -> None:  # a subclass's train calling SB3's: the same phase
        now[0] += 1.0
        ev()

    inner_timed = phases._timed("update", inner)

    def outer() -> str:
        now[0] += 3.0
        inner_timed()
        return "done"

    assert phases._timed("update", outer)() == "done"
    assert phases.seconds == {"update": 4.0, "evaluation": 2.0}
    phases._timed("rollout", lambda: ev())()  # an evaluation in a rollout's callback
    assert phases.seconds == {"update": 4.0, "evaluation": 4.0, "rollout": 0.0}
    assert (
        phases.line(wall=10.0)
        == "update 4.0 s, rollout 0.0 s, evaluation 4.0 s, the rest 2.0 s; 0 evaluation episode steps"
    )


def test_every_phase_times_sb3_and_the_batched_engine_and_puts_the_methods_back(load_benchmark):
    gt = load_benchmark("grid_throughput")
    named = {(phase, getattr(owner, "__name__", ""), name) for phase, owner, name in gt._phase_methods()}
    for expected in [
        ("update", "PPO", "train"), ("update", "SAC", "train"), ("update", "DQN", "train"),
        ("update", "BatchedPPO", "_train"), ("update", "BatchedSAC", "_train"), ("update", "BatchedDQN", "_train"),
        ("rollout", "OnPolicyAlgorithm", "collect_rollouts"), ("rollout", "OffPolicyAlgorithm", "collect_rollouts"),
        ("rollout", "BatchedPPO", "_collect_rollouts"), ("rollout", "OffPolicyBatch", "_collect_rollouts"),
        ("evaluation", "Evaluator", "evaluate"), ("evaluation", "rltransfer.evaluation_together", "evaluate_together"),
    ]:  # fmt: skip
        assert expected in named
    before = [(owner, name, vars(owner)[name]) for _, owner, name in gt._phase_methods()]
    with gt.Phases().timing():
        assert all(vars(owner)[name] is not fn for owner, name, fn in before)
    assert all(vars(owner)[name] is fn for owner, name, fn in before)


def test_the_evaluations_episode_steps_are_the_episodes_lengths(load_benchmark):
    """CartPole pays 1 a step, so an episode's return is its length: the steps counted while timing are the
    returns' sum, and none are counted of an env whose episode ended while its wave goes on."""
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltransfer.evaluation import Episodes, run_episodes

    gt = load_benchmark("grid_throughput")
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    phases = gt.Phases()
    original = Episodes.stepped
    with phases.timing():
        returns = run_episodes(env, lambda obs: np.zeros(len(obs), dtype=np.int64), episodes=3, base_seed=5)
    assert Episodes.stepped is original
    assert len(returns) == 3 and len(set(returns.tolist())) > 1  # episodes of different lengths
    assert phases.episode_steps == int(returns.sum())
    assert phases.seconds["evaluation"] == 0.0  # run_episodes alone is not one of the timed methods
