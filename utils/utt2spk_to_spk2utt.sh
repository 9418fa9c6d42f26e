#!/usr/bin/env bash
# Kaldi's utt2spk_to_spk2utt.pl: utt2spk on stdin, spk2utt on stdout.
# Run with --help for options. Implemented by scpc-datadir utt2spk-to-spk2utt (src/scpc/data/datadir.py).
command -v scpc-datadir >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"
exec scpc-datadir utt2spk-to-spk2utt "$@"
