#!/usr/bin/env bash
# Kaldi's split_data.sh: <data>/split<N>/{1..N}, by speaker (or --per-utt).
# Run with --help for options. Implemented by scpc-datadir split (src/scpc/data/datadir.py).
command -v scpc-datadir >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"
exec scpc-datadir split "$@"
