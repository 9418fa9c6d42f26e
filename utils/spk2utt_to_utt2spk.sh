#!/usr/bin/env bash
# Kaldi's spk2utt_to_utt2spk.pl: spk2utt on stdin, utt2spk on stdout.
# Run with --help for options. Implemented by scpc-datadir spk2utt-to-utt2spk (src/scpc/data/datadir.py).
command -v scpc-datadir >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"
exec scpc-datadir spk2utt-to-utt2spk "$@"
