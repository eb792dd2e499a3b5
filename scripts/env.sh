# Sourced by the scripts: create .venv on first use (CPU torch first, then the project).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv/bin/rltransfer ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  # torch first, its CPU build, from PyTorch's own index (PyPI's Linux wheels are CUDA builds: 5.6 GB of venv);
  # alone, so that its dependencies come with the project's from the usual index, next. A torch already in
  # .venv (a GPU build installed by hand, say) is kept.
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install -q --no-deps "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu || {
      echo "scripts/env.sh: could not install torch 2.13.0's CPU build from https://download.pytorch.org/whl/cpu;" \
        "install a torch build into .venv yourself (.venv/bin/pip install torch), then run this again" >&2
      exit 1
    }
  fi
  .venv/bin/pip install -q -e ".[dev]"
  touch .venv/.installed
fi
export PATH="$ROOT/.venv/bin:$PATH"
