import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# SB3 gives every learn() without a logger of its own an empty folder /tmp/SB3-<time> (its configure(None)): the
# suite's direct SB3 calls left over a thousand a run; one folder for all of them (workers inherit it).
os.environ.setdefault("SB3_LOGDIR", os.path.join(tempfile.gettempdir(), "rltransfer-tests-sb3"))
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def load_benchmark():
    """``load(name)``: the script ``benchmarks/<name>.py`` as a module (``benchmarks/`` is not a package), for
    the tests of what a benchmark computes."""
    return _load_benchmark


def _load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


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
