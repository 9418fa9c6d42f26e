#!/usr/bin/env bash
# Regenerates the committed mini corpus (corpus/mini) from the Harvard sentences with
# Debian's flite and festival voices. Deterministic: a rerun reproduces every file.
# Needs: apt-get install flite festival festvox-kdlpc16k festlex-cmu
#
# Usage: local/make_mini_corpus.sh [--out corpus/mini] [--jobs 2]
set -euo pipefail
cd "$(dirname "$0")/.."

out=corpus/mini  # where to write the corpus
jobs=2           # parallel synthesis processes
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "usage: $0 [--out DIR] [--jobs N]" >&2; exit 1; }

utils/setup_venv.sh
. ./path.sh
start=$(date +%s)
PYTHONPATH=local python -m mini_corpus.generate "$out" --jobs "$jobs"
echo "$0: generated $out in $(( $(date +%s) - start )) s"
