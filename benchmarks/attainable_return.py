"""What return a well-trained single-task agent reaches on one task of a family: plain SB3 (``MlpPolicy``)
with the config's algorithm and hyperparameters (RL Zoo's, in every shipped config), the config's number of
target envs and VecNormalize when the config normalises, trained on the task alone and evaluated every
``--every`` steps. Used to set a threshold (``evaluation.thresholds``) where Gymnasium's, made for the
default task, is out of reach:

    python benchmarks/attainable_return.py configs/acrobot.yaml heavy-long --steps 600000 --seed 0
    python benchmarks/attainable_return.py configs/lunarlander.yaml windy --steps 1500000 --seed 0

Each evaluation is printed twice: on the experiment's own episodes (the config's ``evaluation.episodes``,
reset seeds ``EVAL_SEED + i``, deterministic or sampled as the config says: the episodes every run of the
experiment is scored on, so the ones a threshold must be attainable on) and on ``--episodes`` other episodes
(what the agent holds in general). Where a task's return depends on its start state (Pendulum), a
threshold taken from other episodes can be out of reach on the experiment's.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer import load_config
from rltransfer.agent_factory import resolve_hyperparams
from rltransfer.agents import ALGORITHMS
from rltransfer.envs import get_family
from rltransfer.envs.family import TaskError
from rltransfer.evaluation import EVAL_SEED, MAX_PARALLEL, policy_actor, run_episodes, sampling_rng

FRESH_SEED = 10_000
"""Reset seeds of the fresh episodes: ``FRESH_SEED * (seed + 1) + i`` (apart from ``EVAL_SEED``'s)."""


class ReturnReport(BaseCallback):
    """Every ``every`` steps: the mean return on the experiment's episodes and on fresh ones."""

    def __init__(
        self, make_eval, every: int, protocol_episodes: int, fresh_episodes: int, deterministic: bool, seed: int
    ):
        super().__init__()
        self.make_eval, self.every, self.seed, self.deterministic = make_eval, every, seed, deterministic
        self.protocol_episodes, self.fresh_episodes = protocol_episodes, fresh_episodes
        self._next = every
        self._envs: dict[int, VecEnv] = {}  # one evaluation env per episode count, built once
        self._start = time.time()

    def _mean_return(self, episodes: int, base_seed: int) -> float:
        n = min(episodes, MAX_PARALLEL)
        if n not in self._envs:
            self._envs[n] = self.make_eval(n)
        env = self._envs[n]
        train_env = self.model.get_env()
        if isinstance(env, VecNormalize) and isinstance(train_env, VecNormalize):
            env.obs_rms = train_env.obs_rms
        with sampling_rng(base_seed, self.seed, self.num_timesteps):
            returns = run_episodes(env, policy_actor(self.model, self.deterministic), episodes, base_seed)
        self.model.policy.set_training_mode(True)
        return float(returns.mean())

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            protocol = self._mean_return(self.protocol_episodes, EVAL_SEED)
            fresh = self._mean_return(self.fresh_episodes, FRESH_SEED * (self.seed + 1))
            print(
                f"step {self.num_timesteps}: {protocol:.1f} on the experiment's {self.protocol_episodes} episodes, "
                f"{fresh:.1f} on {self.fresh_episodes} fresh ones ({time.time() - self._start:.0f} s)",
                flush=True,
            )
        return True

    def _on_training_end(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "config",
        help="an experiment config (its family, agent.algo, agent.hyperparams, agent.normalize, transfer.n_envs, evaluation)",
    )
    ap.add_argument("task", help="a task of the config's family (rltransfer families NAME)")
    ap.add_argument("--steps", type=int, default=600_000)
    ap.add_argument("--every", type=int, default=100_000, help="steps between evaluations")
    ap.add_argument("--episodes", type=int, default=20, help="fresh episodes per evaluation (besides the experiment's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, as in rltransfer")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config, args.set)
    family = get_family(cfg.family)
    try:
        task = family.task(args.task, where="target")
    except TaskError as err:
        ap.error(str(err))
    if not isinstance(family.make(task).observation_space, gym.spaces.Box):
        ap.error(f"task '{args.task}' does not have Box observations: this benchmark trains SB3's MlpPolicy")
    env = make_vec_env(lambda: family.make(task), n_envs=cfg.transfer.n_envs, seed=args.seed)

    def make_eval(n: int) -> VecEnv:
        evaluation = make_vec_env(lambda: family.make(task), n_envs=n)
        return VecNormalize(evaluation, training=False, norm_reward=False) if cfg.agent.normalize else evaluation

    if cfg.agent.normalize:
        env = VecNormalize(env)
    algo = ALGORITHMS[cfg.agent.algo].base
    model = algo("MlpPolicy", env, seed=args.seed, device="cpu", **resolve_hyperparams(cfg.agent.hyperparams))
    print(f"{args.task} seed {args.seed}: {cfg.agent.algo} MlpPolicy, {cfg.transfer.n_envs} envs", flush=True)
    report = ReturnReport(
        make_eval, args.every, cfg.evaluation.episodes, args.episodes, cfg.evaluation.deterministic, args.seed
    )
    model.learn(args.steps, callback=report)


if __name__ == "__main__":
    main()
