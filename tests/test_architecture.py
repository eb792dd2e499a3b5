"""Imports run one way: rltransfer -> agents/envs -> libraries; config, statistics and records never import torch."""

import ast
import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def imports_of(path: Path) -> set[str]:
    """Module-level imports (lazy imports inside functions are allowed)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


SHARED_LEAVES = {"rltransfer.observation_keys"}
"""The pipeline's modules that envs and agents may import: leaves that import nothing but the standard library
(the names both sides of the observation use)."""


def test_envs_and_agents_never_import_each_other_or_the_pipeline():
    for folder, other in (("envs", "rltransfer.agents"), ("agents", "rltransfer.envs")):
        for path in (ROOT / folder).glob("*.py"):
            for name in all_imports(path):
                assert not name.startswith(other), f"{path} imports {name}"
                if name.startswith("rltransfer.") and name not in SHARED_LEAVES:
                    assert name.startswith(f"rltransfer.{folder}"), f"{path} imports {name}"
    for leaf in SHARED_LEAVES:
        imported = all_imports(ROOT / (leaf.replace(".", "/") + ".py"))
        assert all(name.split(".")[0] in sys.stdlib_module_names for name in imported), (leaf, imported)


def _another_vocabulary(node: ast.AST) -> bool:
    """Whether ``node`` indexes a step's ``info`` (whose ``task`` names the task) or compares a conditioning (whose
    ``context`` is a config's value): not the observation's entries."""
    if isinstance(node, ast.Subscript):
        return "info" in ast.unparse(node.value)
    return "conditioning" in ast.unparse(node)


def test_the_observation_keys_are_named_in_one_module():
    """The entries of an agent's observation are spelt out once (``rltransfer.observation_keys``): the envs that
    build the observation, the agents that read it and the pipeline import them, so that no module spells them as
    literals of its own (an index or a comparison with ``"obs"``, ``"context"`` or ``"task"``)."""
    keys = {"obs", "context", "task"}
    found = []
    for folder in ("rltransfer", "envs", "agents"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "observation_keys.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                literals = []
                if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                    literals.append(node.slice)
                elif isinstance(node, ast.Compare):
                    literals += [n for n in [node.left, *node.comparators] if isinstance(n, ast.Constant)]
                for lit in literals:
                    if lit.value in keys and not _another_vocabulary(node):
                        found.append(f"{path.relative_to(ROOT)}:{lit.lineno} {lit.value!r}")
    assert not found, found


def test_config_statistics_and_records_do_not_import_torch():
    paths = [ROOT / "rltransfer" / n for n in ("config.py", "config_errors.py", "config_yaml.py", "errors.py")]
    paths += sorted((ROOT / "rltransfer" / "stats").glob("*.py")) + sorted(
        (ROOT / "rltransfer" / "records").glob("*.py")
    )
    assert len(paths) == 4 + 5 + 10 and all(p.is_file() for p in paths)
    for path in paths:
        assert not any(n.split(".")[0] in {"torch", "stable_baselines3"} for n in imports_of(path)), path


def test_code_never_imports_top_level_envs_or_agents():
    paths = [
        p for folder in ("rltransfer", "envs", "agents", "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py")
    ]
    assert any(p.parent.name == "stats" for p in paths)  # the subpackages too
    for path in paths:
        for name in all_imports(path):
            assert name.split(".")[0] not in {"envs", "agents"}, f"{path} imports {name}"


def test_the_packages_exports_load_on_first_use():
    """``rltransfer.agents`` and ``rltransfer.envs`` name their exports without importing them (lazy_loader):
    the names type checkers see are the names exported; every one resolves (``EAGER_IMPORT`` loads them all);
    importing the packages, the components' names, a family's description, any strategy's plan or a config's
    tasks resolved loads no torch (a report makes every run's plan, and resolves an older publication's config)."""
    import subprocess
    import sys

    for package in ("agents", "envs"):
        tree = ast.parse((ROOT / package / "__init__.py").read_text())
        checked = {a.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names}
        exported = importlib.import_module(f"rltransfer.{package}").__all__
        assert checked - {"TYPE_CHECKING", None} == set(exported), package
    script = (
        "import sys, rltransfer.agents, rltransfer.envs, rltransfer.agents.component_names, rltransfer.strategies\n"
        "from rltransfer.envs import get_family\n"
        "get_family('cartpole').describe()\n"
        "for name in rltransfer.strategies.known_strategies():\n"
        "    rltransfer.strategies.plan_of(name, None)\n"
        "from rltransfer.config import load_config\n"
        "from rltransfer.validation import resolve\n"
        "resolve(load_config('configs/cartpole.yaml'))\n"
        "print('torch' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.stdout.strip() == "False", res.stderr
    res = subprocess.run(
        [sys.executable, "-c", "import rltransfer.agents, rltransfer.envs"], env={**os.environ, "EAGER_IMPORT": "1"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    strategies = importlib.import_module("rltransfer.strategies")
    agents = importlib.import_module("rltransfer.agents")
    assert set(strategies.ALGOS) == set(agents.ALGORITHMS)  # the config's algorithm names are the trained ones
    kickstart, progressive = strategies.plan_of("kickstart", None), strategies.plan_of("progressive", None)
    assert kickstart.algo_type() is agents.KickstartPPO and progressive.policy_type() is agents.ProgressivePolicy
    assert strategies.plan_of("finetune", None).algo_type() is None


def test_the_top_level_names_are_the_functions_themselves():
    """``rltransfer.transfer`` and the others are the functions, with their signatures and documentation
    (they were wrappers taking ``*args, **kwargs``), and ``import rltransfer`` loads no torch."""
    import inspect
    import subprocess
    import sys

    rltransfer = importlib.import_module("rltransfer")
    for name in rltransfer.__all__:
        function = getattr(rltransfer, name)
        assert function.__module__.startswith("rltransfer.") and "args" not in inspect.signature(function).parameters
    assert rltransfer.transfer is importlib.import_module("rltransfer.transferring").transfer
    script = "import sys, rltransfer\nrltransfer.load_config('configs/cartpole.yaml')\nprint('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.stdout.strip() == "False", res.stderr


def test_a_function_named_as_its_module_is_the_function():
    """``transferable`` lives in ``transferable.py``: importing that module (as its siblings do) does not shadow
    the function the package exports."""
    module = importlib.import_module("rltransfer.agents.transferable")
    from rltransfer.agents import transferable

    assert callable(transferable) and transferable is module.transferable


def test_every_module_of_the_package_stays_under_500_lines():
    """Small modules named for their concept: one that outgrows 500 lines holds two concepts; split it."""
    paths = [p for folder in ("rltransfer", "envs", "agents") for p in (ROOT / folder).rglob("*.py")]
    assert len(paths) > 100 and any(p.name == "batched_ppo.py" for p in paths)
    long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) >= 500}
    assert not long, f"modules of 500 lines or more: {long}"
