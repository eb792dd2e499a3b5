"""What return a well-trained single-task agent reaches on one task of a family: plain SB3 (``MlpPolicy``)
with the config's algorithm and hyperparameters (RL Zoo's, in every shipped config), the config's number of
target envs and VecNormalize when the config normalises, trained on the task alone and evaluated
(``--episodes`` episodes, SB3's EvalCallback, deterministic or sampled as the config's ``evaluation`` says)
every ``--every`` steps. Used to set a threshold
(``evaluation.thresholds``) where Gymnasium's, made for the default task, is out of reach:

    python benchmarks/attainable_return.py configs/acrobot.yaml heavy-long --steps 600000 --seed 0
    python benchmarks/attainable_return.py configs/lunarlander.yaml windy --steps 1500000 --seed 0
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from rltransfer import load_config
from rltransfer.agent_factory import resolve_hyperparams
from rltransfer.agents import ALGORITHMS
from rltransfer.envs import get_family
from rltransfer.envs.family import TaskError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "config",
        help="an experiment config (its family, agent.algo, agent.hyperparams, agent.normalize, transfer.n_envs)",
    )
    ap.add_argument("task", help="a task of the config's family (rltransfer families NAME)")
    ap.add_argument("--steps", type=int, default=600_000)
    ap.add_argument("--every", type=int, default=100_000, help="steps between evaluations")
    ap.add_argument("--episodes", type=int, default=20, help="episodes per evaluation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    family = get_family(cfg.family)
    try:
        task = family.task(args.task, where="target")
    except TaskError as err:
        ap.error(str(err))
    if not isinstance(family.make(task).observation_space, gym.spaces.Box):
        ap.error(f"task '{args.task}' does not have Box observations: this benchmark trains SB3's MlpPolicy")
    n_envs = cfg.transfer.n_envs
    env = make_vec_env(lambda: family.make(task), n_envs=n_envs, seed=args.seed)
    evaluation = make_vec_env(lambda: family.make(task), n_envs=1, seed=10_000 + args.seed)
    if cfg.agent.normalize:  # EvalCallback copies the training statistics into the evaluation env
        env = VecNormalize(env)
        evaluation = VecNormalize(evaluation, training=False, norm_reward=False)
    algo = ALGORITHMS[cfg.agent.algo].base
    model = algo("MlpPolicy", env, seed=args.seed, device="cpu", **resolve_hyperparams(cfg.agent.hyperparams))
    start = time.time()

    class Report(BaseCallback):  # called by EvalCallback after each evaluation
        def _on_step(self) -> bool:
            print(
                f"{args.task} seed {args.seed} step {self.num_timesteps}: {self.parent.last_mean_reward:.1f} "
                f"({time.time() - start:.0f} s)",
                flush=True,
            )
            return True

    callback = EvalCallback(
        evaluation, callback_after_eval=Report(), n_eval_episodes=args.episodes,
        eval_freq=max(args.every // n_envs, 1), deterministic=cfg.evaluation.deterministic, verbose=0,
    )  # fmt: skip
    model.learn(args.steps, callback=callback)


if __name__ == "__main__":
    main()
