"""A script that starts an experiment at its top level, outside ``if __name__ == "__main__":``, is refused where
the grid's runs go to spawned workers (each imports the script again and would start the experiment again):
rltransfer's judgement of which scripts a worker imports again is checked against real spawned workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent(
    """
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    from rltransfer.execution.main_script import unguarded_call


    def check():  # as rltransfer.run_experiment calls it
        return unguarded_call()


    print("imported in", mp.current_process().name, flush=True)
    TOP = check()
    if __name__ == "__main__":
        GUARDED = check()
        print("unguarded at the top:", TOP is not None, "under the guard:", GUARDED is not None, flush=True)
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            pool.submit(os.getpid).result()  # a module's function: no script's needed
    """
)


@pytest.mark.parametrize(
    "layout, command, imported_again",
    [
        ({"probe.py": PROBE}, ["probe.py"], True),  # python script.py
        ({"probe.py": PROBE}, ["-m", "probe"], True),  # python -m module
        ({"pkg/__init__.py": "", "pkg/__main__.py": PROBE}, ["-m", "pkg"], False),  # python -m package
        ({"app/__main__.py": PROBE}, ["app"], False),  # python directory
    ],
)
def test_a_script_is_judged_unguarded_exactly_where_spawned_workers_import_it_again(
    tmp_path, layout, command, imported_again
):
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    done = subprocess.run([sys.executable, *command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    imports = [line for line in done.stdout.splitlines() if line.startswith("imported in")]
    assert len(imports) == (2 if imported_again else 1), done.stdout  # the worker ran the top level again, or not
    assert f"unguarded at the top: {imported_again} under the guard: False" in done.stdout


def test_an_experiment_started_at_a_scripts_top_level_is_refused_before_anything_is_written(tmp_path):
    config = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
    script = tmp_path / "study.py"
    script.write_text(
        "import rltransfer\n\n"
        f"rltransfer.run_experiment({str(config)!r}, overrides=['runner.workers=2', 'output_dir={tmp_path}/runs'])\n"
    )
    done = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "ConfigError: 'study.py' line 3 starts this experiment at the script's top level" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
    assert not (tmp_path / "runs").exists()
