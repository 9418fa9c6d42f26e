#!/usr/bin/env bash
# Kaldi's utils/data/get_utt2dur.sh: writes <data>/utt2dur from segments or audio headers.
# Run with --help for options. Implemented by scpc-datadir utt2dur (src/scpc/data/datadir.py).
command -v scpc-datadir >/dev/null 2>&1 || . "$(dirname "$0")/../../path.sh"
exec scpc-datadir utt2dur "$@"
