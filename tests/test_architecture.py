"""Imports run one way: rltransfer -> agents/envs -> libraries; config, statistics and records never import torch."""

import ast
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


def test_envs_and_agents_never_import_each_other_or_the_pipeline():
    for folder, other in (("envs", "rltransfer.agents"), ("agents", "rltransfer.envs")):
        for path in (ROOT / folder).glob("*.py"):
            for name in all_imports(path):
                assert not name.startswith(other), f"{path} imports {name}"
                if name.startswith("rltransfer."):
                    assert name.startswith(f"rltransfer.{folder}"), f"{path} imports {name}"


def test_config_statistics_and_records_do_not_import_torch():
    paths = [ROOT / "rltransfer" / n for n in ("config.py", "errors.py")]
    paths += sorted((ROOT / "rltransfer" / "stats").glob("*.py")) + sorted(
        (ROOT / "rltransfer" / "records").glob("*.py")
    )
    assert len(paths) == 2 + 5 + 7 and all(p.is_file() for p in paths)
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


def test_the_agents_package_exports_load_on_first_use():
    """``rltransfer.agents`` names its exports without importing them (PEP 562): each resolves to the object its
    module defines, and importing the package, or the components' names, loads no torch."""
    import importlib
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", "import sys, rltransfer.agents, rltransfer.agents.component_names, rltransfer.strategies;"
         "print('torch' in sys.modules)"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.stdout.strip() == "False", res.stderr
    agents = importlib.import_module("rltransfer.agents")
    for name in agents.__all__:
        module = importlib.import_module(f"rltransfer.agents.{agents._MODULE_OF[name]}")
        assert getattr(agents, name) is getattr(module, name), name
    assert "not_a_name" not in dir(agents) and set(agents.__all__) <= set(dir(agents))
    strategies = importlib.import_module("rltransfer.strategies")
    assert set(strategies.ALGOS) == set(agents.ALGORITHMS)  # the config's algorithm names are the trained ones
