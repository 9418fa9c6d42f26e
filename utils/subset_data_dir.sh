#!/usr/bin/env bash
# Kaldi's subset_data_dir.sh: by utterance or speaker list, first/last/shortest N, whole speakers, N per speaker.
# Run with --help for options. Implemented by scpc-datadir subset (src/scpc/data/datadir.py).
command -v scpc-datadir >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"
exec scpc-datadir subset "$@"
