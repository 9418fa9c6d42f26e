#!/usr/bin/env bash
# Prepares Speech Commands v0.01 for 12-class keyword spotting (SUPERB KS) as Kaldi data dirs
# <data-dir>/{train,valid,test}: text (the word), utt2label (10 commands, _unknown_,
# _silence_), segments for one-second silence windows of the background noise.
#
# Usage: local/speech_commands_data_prep.sh [--test-dir DIR] <speech_commands_v0.01> <data-dir>
set -euo pipefail
test_dir=   # the official test set (speech_commands_test_set_v0.01); default: testing_list.txt
help_message="Usage: $0 [--test-dir DIR] <speech_commands_v0.01-dir> <data-dir>"
. "$(dirname "$0")/../utils/parse_options.sh"
[ $# -eq 2 ] || { echo "$help_message" >&2; exit 1; }
command -v scpc-prep >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"

test_opt=(); [ -n "$test_dir" ] && test_opt=(--test-root "$test_dir")
scpc-prep speech-commands "${test_opt[@]}" "$1" "$2"
