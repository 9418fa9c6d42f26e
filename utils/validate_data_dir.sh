#!/usr/bin/env bash
# Kaldi's validate_data_dir.sh: checks a data dir; one-line error naming the file and problem.
# Run with --help for options. Implemented by scpc-datadir validate (src/scpc/data/datadir.py).
command -v scpc-datadir >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"
exec scpc-datadir validate "$@"
