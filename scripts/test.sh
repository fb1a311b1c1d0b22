#!/usr/bin/env bash
# Set up the environment with test extras on a fresh machine, lint, and run the whole suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv "[test]"
# The browser runtime of `export --format web`, from npm once (checked against its sha512):
# the page tests open it in Chromium, and no test downloads anything.
.venv/bin/python -m dcgan.web.runtime
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# One worker per core, at most four: each test process runs TensorFlow's own threads.
.venv/bin/python -m pytest -n auto --maxprocesses 4 "$@"
