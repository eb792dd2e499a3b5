import os

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
torch.set_num_threads(1)


@pytest.fixture
def tiny_config(tmp_path):
    """A CartPole experiment config with budgets small enough for a unit test."""
    return {
        "name": "tiny",
        "output_dir": str(tmp_path / "runs"),
        "family": "cartpole",
        "source_tasks": ["short", "long"],
        "target_tasks": ["very-long-heavy"],
        "conditioning": "context",
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 2}},
        "pretrain": {"timesteps": 256, "envs_per_task": 1, "eval_episodes": 2},
        "transfer": {"timesteps": 256, "seeds": 2, "strategies": ["scratch", "finetune"]},
        "evaluation": {"every": 128, "episodes": 2},
        "runner": {"workers": 1},
    }
