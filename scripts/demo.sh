#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec python3 examples/seed_graph.py "$@"
