"""The Python on the documentation's pages runs as it is written: each ```python block as a script of its own (as
a user copies one), in a fresh process, in order, in a user's directory that holds the repository's configs
(those of a page of extensions as modules, imported by a script that uses them). Only the budgets
are cut (the configs' and the few numbers :data:`CUTS` names), so that a page runs in seconds; a cut whose
text the page no longer holds fails the test, so that no page goes untested by a stale cut."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

SMALL: dict[str, Any] = {
    "pretrain": {"timesteps": 2048, "seeds": 1, "min_source_score": None},
    "transfer": {"timesteps": 1024},
    "evaluation": {"every": 512, "episodes": 2},
    "runner": {"workers": 1},
}
"""What every config of the user's directory has instead of its budgets."""

CONFIG_CUTS: dict[str, dict[str, Any]] = {
    "quickstart.yaml": {"transfer": {"seeds": 2}},
    "cartpole.yaml": {"transfer": {"strategies": ["scratch", "finetune"]}, "target_tasks": ["very-long-heavy"]},
}
"""Each config the pages run, cut further than :data:`SMALL` (fewer strategies, targets or seeds)."""

CUTS: dict[str, list[tuple[str, str]]] = {
    "README.md": [('"transfer.seeds=20"', '"transfer.seeds=2"')],
    "docs/api.md": [
        ('"transfer.seeds=20"', '"transfer.seeds=2"'),
        ("timesteps=20_000", "timesteps=1_024"),
        ('"transfer.timesteps=20000"', '"transfer.timesteps=1024"'),
        ("model.learn(20_000)", "model.learn(1_024)"),
        ("batch_size=256).learn(10_000)", "batch_size=256).learn(256)"),
    ],
    "docs/extending.md": [],
}
"""The numbers of each page's code that are cut: (as written, as run)."""


def page_blocks(page: str) -> list[str]:
    """The page's ```python blocks, in order, with its :data:`CUTS` applied."""
    text = (ROOT / page).read_text()
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.M | re.S)
    assert blocks, f"{page} holds no ```python block: take it out of CUTS"
    for written, run in CUTS[page]:
        assert any(written in b for b in blocks), (
            f"{page}'s code no longer holds {written!r}: update CUTS in {__file__}"
        )
        blocks = [b.replace(written, run) for b in blocks]
    return blocks


def _merge(base: dict[str, Any], cut: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in cut.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def user_dir(tmp_path: Path) -> Path:
    """A user's directory: the repository's configs, every one with small budgets."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    for name, cut in CONFIG_CUTS.items():
        path = tmp_path / "configs" / name
        config = _merge(_merge(yaml.safe_load(path.read_text()), SMALL), cut)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


def run_script(directory: Path, code: str, name: str) -> str:
    """``code`` as ``python NAME`` in ``directory`` (a script, as a user runs one: the grid's spawned workers
    re-import it); its output, or the test fails with it."""
    (directory / name).write_text(code)
    done = subprocess.run([sys.executable, name], cwd=directory, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"{name} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    )
    return done.stdout


def test_every_page_with_python_code_is_run_here():
    pages = [p.relative_to(ROOT).as_posix() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]]
    with_code = [p for p in pages if "```python" in (ROOT / p).read_text()]
    assert sorted(with_code) == sorted(CUTS)


def test_the_readme_code_runs_after_the_quick_start(tmp_path):
    directory = user_dir(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "rltransfer", "experiment", "configs/quickstart.yaml"],
        cwd=directory, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-6000:]
    (code,) = page_blocks("README.md")
    out = run_script(directory, code, "readme.py")
    assert "'very-long-heavy':" in out  # the verdicts, printed
    assert (directory / "runs" / "cartpole-physics" / "report" / "summary.json").is_file()


def test_the_python_api_pages_blocks_run_one_after_another(tmp_path):
    directory = user_dir(tmp_path)
    out = "".join(run_script(directory, code, f"api_{i}.py") for i, code in enumerate(page_blocks("docs/api.md")))
    assert (directory / "runs" / "cartpole-physics" / "report" / "summary.json").is_file()
    assert (directory / "runs" / "quickstart" / "pretrain" / "bundle" / "bundle.json").is_file()
    assert len(re.findall(r"\(np\.float64\(-?\d+\.\d+\), np\.float64\(\d+\.\d+\)\)", out)) == 1  # evaluate_policy


def test_the_extending_pages_family_and_strategy_work(tmp_path):
    """Its blocks as the user's modules: the family passes the family checks, and an experiment of a script that
    imports them trains the strategy on the family in two worker processes (which import the script again)."""
    directory = user_dir(tmp_path)
    for i, code in enumerate(page_blocks("docs/extending.md")):
        (directory / f"extending_{i}.py").write_text(code)
    study = """
import rltransfer
from stable_baselines3 import PPO
from rltransfer.envs import get_family
from rltransfer.envs.checks import check_family

import extending_0  # noqa: F401  (the family)
import extending_1  # noqa: F401  (the strategy)

if __name__ == "__main__":
    failed = [c for c in check_family(get_family("my-mountaincar")) if not c.ok]
    assert not failed, failed
    config = {
        "name": "mine", "family": "my-mountaincar", "agent": {"algo": "ppo", "hyperparams": {"n_steps": 256}},
        "pretrain": {"timesteps": 1024}, "evaluation": {"every": 512, "episodes": 2},
        "transfer": {"timesteps": 1024, "seeds": 2, "strategies": ["scratch", "trunk_only"]},
        "runner": {"workers": 2},
    }
    result = rltransfer.run_experiment(config)
    assert not result.failed, result.failed
    print(sorted({row["strategy"] for row in result.summary["rows"]}))
    for model in sorted(result.run_dir.glob("runs/*/trunk_only/seed-*/model.zip")):
        print("updates", PPO.load(model)._n_updates)  # each run trained
"""
    out = run_script(directory, study, "study.py")
    assert "['scratch', 'trunk_only']" in out
    # 3 updates of 10 epochs a seed: 4 rollouts of 256 steps, the run stopping at its 1,024th step, as the 4th ends
    assert re.findall(r"updates (\d+)", out) == ["30", "30"]
