#!/usr/bin/env bash
# Set up everything on a fresh machine and train the embedded default (scikit-learn's
# handwritten digits, no download). Extra arguments go to `dcgan train`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv ""
.venv/bin/dcgan train --config configs/digits.yaml "$@"
