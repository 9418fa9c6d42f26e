#!/usr/bin/env bash
# Runs the test suite (sets up .venv on first use). Extra arguments go to pytest,
# e.g. ./test.sh -k datadir -x
set -euo pipefail
cd "$(dirname "$0")"
utils/setup_venv.sh
exec .venv/bin/python -m pytest "$@"
