#!/usr/bin/env bash
# Set up the environment with test extras on a fresh machine, lint, and run the whole suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv "[test]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# One worker per core, at most four: each test process runs TensorFlow's own threads.
.venv/bin/python -m pytest -n auto --maxprocesses 4 "$@"
