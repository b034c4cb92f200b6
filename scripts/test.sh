#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Exit code: pytest's, with
# "no tests collected" (5) counted as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
python3 -m pytest tests "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "no tests were collected: counting that as a failure" >&2
  exit 1
fi
exit "$code"
