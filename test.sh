#!/usr/bin/env bash
# Runs the test suite (sets up .venv on first use), spread over every core by pytest-xdist.
#
#   ./test.sh            everything, as CI runs it (12 minutes on 2 cores)
#   ./test.sh --quick    the inner loop: unit tests, the readers' fuzzing at 200 examples and
#                        one end-to-end recipe; leaves out what is marked slow (training runs,
#                        recipes, clusters) (about a minute on 2 cores)
#
# Other arguments go to pytest, e.g. ./test.sh -k datadir -x, or -n 0 for one process.
# SCPC_TEST_WORKERS sets the number of worker processes (default: one per core).
set -euo pipefail
cd "$(dirname "$0")"
utils/setup_venv.sh
tier=()
if [ "${1:-}" = --quick ]; then
  shift
  tier=(-m "not slow or quick")
  export FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-200}
fi
# loadscope: each test file goes whole to the next free worker, so that a file's module
# fixtures (a trained model, the Slurm or Grid Engine test cluster) are made once; the files
# go longest first (tests/conftest.py orders them), not by their number of tests. (xdist_group
# would allow finer units, but pytest 9.2 broke it: pytest-xdist issue 1386.)
exec .venv/bin/python -m pytest -n "${SCPC_TEST_WORKERS:-auto}" --dist loadscope \
  --no-loadscope-reorder "${tier[@]}" "$@"
