# shellcheck shell=bash
# Sourced by every recipe: the project's virtual environment and the recipe directories on PATH.
# Run utils/setup_venv.sh first (run.sh does it for you).
SCPC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH=$SCPC_ROOT/.venv/bin:$SCPC_ROOT/utils:$SCPC_ROOT/steps:$SCPC_ROOT/local:$PATH
export LC_ALL=C  # Kaldi-style tables are sorted bytewise
export PYTHONUNBUFFERED=1
