#!/usr/bin/env bash
# Prepares VoxCeleb1 as Kaldi data dirs: <data-dir>/sid_{train,dev,test} (iden_split.txt,
# SUPERB SID) and <data-dir>/asv_{train,test} (speakers outside / inside the trial list, with
# a Kaldi trials file, SUPERB ASV).
#
# Usage: local/voxceleb1_data_prep.sh [--trials veri_test.txt] <voxceleb1-dir> <data-dir>
set -euo pipefail
trials=veri_test.txt   # trial list inside <voxceleb1-dir> (veri_test2.txt is the cleaned one)
help_message="Usage: $0 [--trials FILE] <voxceleb1-dir> <data-dir>"
. "$(dirname "$0")/../utils/parse_options.sh"
[ $# -eq 2 ] || { echo "$help_message" >&2; exit 1; }
command -v scpc-prep >/dev/null 2>&1 || . "$(dirname "$0")/../path.sh"

scpc-prep voxceleb1 --trials "$trials" "$1" "$2"
