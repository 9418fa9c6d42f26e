#!/usr/bin/env bash
# Kaldi's fix_data_dir.sh: sorts every table and keeps utterances present in all of them.
# Run with --help for options. Implemented by scpc-datadir fix (src/scpc/data/datadir.py).
command -v scpc-datadir >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"
exec scpc-datadir fix "$@"
