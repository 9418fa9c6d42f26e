#!/usr/bin/env bash
# Prepares the committed mini corpus, offline, in seconds:
#   <data>/{train,dev,test}          LibriSpeech-style data dirs with ali.txt (+ abx.item on dev/test)
#   <data>_speech_commands/{train,valid,test}            keyword spotting
#   <data>_voxceleb1/{sid_train,sid_dev,sid_test,asv_train,asv_test}   speaker tasks
# from format-faithful Speech Commands / VoxCeleb1 trees it builds under <data>/local.
#
# Usage: local/mini_data_prep.sh [--corpus corpus/mini] [<data>]   (default data/mini)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
corpus=$root/corpus/mini   # the committed mini corpus
help_message="Usage: $0 [--corpus DIR] [<data-dir>]"
. "$root/utils/parse_options.sh"
[ $# -le 1 ] || { echo "$help_message" >&2; exit 1; }
data=${1:-data/mini}
command -v scpc-prep >/dev/null 2>&1 || . "$root/path.sh"

if [ -f "$data/.complete" ]; then
  echo "$0: $data is already prepared (remove $data/.complete to redo)"; exit 0
fi
scpc-prep verify-mini "$corpus"
for part in train dev test; do
  "$root"/local/librispeech_data_prep.sh "$corpus/LibriSpeech/$part" "$data/$part"
  items=(); [ -f "$corpus/abx/$part.item" ] && items=(--items "$corpus/abx/$part.item")
  scpc-prep attach-alignments "${items[@]}" "$data/$part" \
    "$corpus/alignments/$part.txt" "$corpus/alignments/phones.txt" >/dev/null
done
scpc-prep mini-layouts "$corpus" "$data/local"
"$root"/local/speech_commands_data_prep.sh --test-dir "$data/local/speech_commands_test_set_v0.01" \
  "$data/local/speech_commands_v0.01" "${data}_speech_commands"
"$root"/local/voxceleb1_data_prep.sh "$data/local/voxceleb1" "${data}_voxceleb1"
touch "$data/.complete"
