#!/usr/bin/env bash
# Prepares one LibriSpeech part (or a mini-corpus part, same layout) as a Kaldi data dir:
# wav.scp text utt2spk spk2utt spk2gender utt2dur. Speakers are readers; ids <spk>-<chapter>-<utt>.
#
# Usage: local/librispeech_data_prep.sh <part-dir> <data-dir>
#   e.g. local/librispeech_data_prep.sh /corpora/LibriSpeech/dev-clean data/librispeech/dev_clean
set -euo pipefail
help_message="Usage: $0 <part-dir> <data-dir>"
. "$(dirname "$0")/../utils/parse_options.sh"
[ $# -eq 2 ] || { echo "$help_message" >&2; exit 1; }
command -v scpc-prep >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"

scpc-prep librispeech "$1" "$2"
