# Sourced by the scripts: create .venv on first use (CPU torch first, then the project).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv/bin/rltransfer ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  # torch first, its CPU build: PyPI's Linux wheels are CUDA builds of several GB (torch-2.13.0+cu130), and
  # a bare torch requirement would pull one. PyTorch's CPU index serves torch-2.13.0+cpu, which pip prefers
  # (a local version sorts above the plain one); where that index cannot be reached, pip says so, retries a few
  # seconds and takes what the other indexes hold.
  .venv/bin/pip install -q "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu
  .venv/bin/pip install -q -e ".[dev]"
  touch .venv/.installed
fi
export PATH="$ROOT/.venv/bin:$PATH"
