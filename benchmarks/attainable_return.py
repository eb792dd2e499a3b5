"""What return a well-trained single-task agent reaches on one Acrobot task: plain SB3 PPO with RL Zoo's
Acrobot-v1 hyperparameters (16 envs, n_steps 256, gae_lambda 0.94, 4 epochs, VecNormalize), evaluated
(20 deterministic episodes) every 100,000 steps. Used to set a threshold where Gymnasium's (made for the
default arm) is out of reach: configs/acrobot.yaml's heavy-long.

    python benchmarks/attainable_return.py heavy-long --steps 600000 --seed 0
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from rltransfer.envs import get_family


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", help="an Acrobot family task name (rltransfer families acrobot)")
    ap.add_argument("--steps", type=int, default=600_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    family = get_family("acrobot")
    task = family.task(args.task, where="target")
    env = VecNormalize(make_vec_env(lambda: family.make(task), n_envs=16, seed=args.seed))
    model = PPO(
        "MlpPolicy", env, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0, seed=args.seed,
        device="cpu",
    )  # fmt: skip
    start = time.time()
    for _ in range(args.steps // 100_000):
        model.learn(100_000, reset_num_timesteps=False)
        evaluation = VecNormalize(make_vec_env(lambda: family.make(task), n_envs=1, seed=99), training=False)
        evaluation.norm_reward = False
        evaluation.obs_rms = env.obs_rms
        mean, std = evaluate_policy(model, evaluation, n_eval_episodes=20, deterministic=True)
        print(
            f"{args.task} seed {args.seed} step {model.num_timesteps}: {mean:.1f} +- {std:.1f} ({time.time() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
