#!/usr/bin/env bash
# Packs a Kaldi data dir (wav.scp [+ segments], utt2spk [+ text] [+ ali.txt]) into tar shards
# in the WebDataset convention, for training on a cluster file system or from an object store:
#   <shard-dir>/shard-NNNNNN.tar   per utterance <key>.flac (compressed audio) and <key>.json
#                                  (id, speaker, num_samples, text, ali)
#   <shard-dir>/shards.list        one shard per line: a path, or a command printing it ("... |")
#   <shard-dir>/shards.json        utterances and seconds per shard
# Utterances are shuffled (--seed) before packing; each shard holds about --shard-seconds of
# audio. A re-run resumes an interrupted one (finished shards are kept). To stream from S3,
# upload the shards and rewrite shards.list, e.g. "aws s3 cp s3://bucket/shard-000000.tar - |".
#
# Usage: steps/make_shards.sh [--shard-seconds 3600] [--seed 0] <data-dir> <shard-dir>
#   e.g. steps/make_shards.sh data/librispeech/train_960_cpc_train shards/train_960
set -euo pipefail
declare root; root=$(cd "$(dirname "$0")/.." && pwd)
shard_seconds=3600   # audio per shard (about 60 MB of 16 kHz FLAC)
seed=0               # packing order
declare help_message="Usage: $0 [options] <data-dir> <shard-dir>"
. "$root/utils/parse_options.sh"
[ $# -eq 2 ] || { echo "$help_message" >&2; exit 1; }
. "$root/path.sh"

scpc-datadir make-shards --shard-seconds "$shard_seconds" --seed "$seed" "$1" "$2"
