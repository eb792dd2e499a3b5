"""The running script, as the local pool's worker processes see it: each is spawned and imports the script again
(as ``__mp_main__``, to find the families, strategies and encoders it registers), so whatever the script does at
its top level outside ``if __name__ == "__main__":`` it does again in every worker. An experiment started there
would start again in each worker, and the workers die on it (Python's "safe importing of the main module").
Which scripts a worker imports again is restated from ``multiprocessing.spawn`` (``get_preparation_data`` and
``_fixup_main_from_name``/``_fixup_main_from_path``); tests/test_main_script.py spawns workers and checks it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import FrameType, ModuleType


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, *test.comparators]
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and any(
        isinstance(s, ast.Constant) and s.value == "__main__" for s in sides
    )


def _script_line(main: ModuleType, frame: FrameType | None) -> int | None:
    """The line of the script's own top-level code that the call came through (the outermost frame of the
    script's module code); None where the call did not come through it."""
    line = None
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
        frame = frame.f_back
    return line


def unguarded_call() -> tuple[Path, int] | None:
    """Where the running script's top-level code, outside ``if __name__ == "__main__":``, led to this call
    (its file and line); None where it is guarded, came from elsewhere (an interactive session, ``python -c``,
    a test runner), or the script cannot be read."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:  # interactive or -c: a spawned worker has no script to import
        return None
    name = getattr(main.__spec__, "name", None) or ""  # "pkg.mod" under python -m; "" for a script
    if name == "__main__" or name.endswith(".__main__") or Path(path).stem == "ipython":
        return None  # a package's (or directory's) __main__, IPython's script: spawn does not import them again
    line = _script_line(main, sys._getframe(1))
    if line is None:
        return None
    try:
        tree = ast.parse(Path(path).read_text(), filename=path)
    except (OSError, SyntaxError, ValueError):  # not Python source (a zipapp, a frozen binary): cannot tell
        return None
    guarded = [node.body for node in tree.body if isinstance(node, ast.If) and _is_main_test(node.test)]
    if any(body[0].lineno <= line <= (body[-1].end_lineno or body[-1].lineno) for body in guarded):  # not else
        return None
    return Path(path), line
