#!/usr/bin/env bash
# Kaldi's combine_data.sh: <dest> <src1> <src2> ... (utterance ids must not collide).
# Run with --help for options. Implemented by scpc-datadir combine (src/scpc/data/datadir.py).
command -v scpc-datadir >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"
exec scpc-datadir combine "$@"
