#!/usr/bin/env bash
# Extracts the representations of a list of utterances with scpc-a2r, split over --nj jobs run
# through --cmd (logs in <out-dir>/log): one <uttid>.pt (or .npy) per utterance. A re-run skips
# what is there, so an interrupted or partly failed extraction resumes. With
# --a2r-opts "--format kaldi", Kaldi tables instead: feats.JOB.ark/.scp per job, joined into
# <out-dir>/feats.scp and utt2num_frames (sorted, as Kaldi's scripts join them).
#
# Usage: steps/make_reps.sh [--nj 2] [--cmd "$train_cmd"] [--gpu 0] [--a2r-opts "..."] \
#          <wav.scp> <checkpoint> <out-dir>
#   e.g. steps/make_reps.sh --nj 8 --a2r-opts "--pca-file exp/m/version_0/pca_32.pt" \
#          data/mini/test/wav.scp exp/m/version_0/best.ckpt exp/m/version_0/reps/test
set -euo pipefail
declare root; root=$(cd "$(dirname "$0")/.." && pwd)
nj=2                  # parallel jobs
cmd=run_local.sh      # job launcher, e.g. "$train_cmd" from cmd.sh
gpu=0                 # GPUs per job asked of the launcher (scpc-a2r --device auto uses one)
a2r_opts=             # more scpc-a2r options, e.g. "--numpy --dtype float64" or "--layer all"
declare help_message="Usage: $0 [options] <wav.scp> <checkpoint> <out-dir>"
. "$root/utils/parse_options.sh"
[ $# -eq 3 ] || { echo "$help_message" >&2; exit 1; }
scp=$1 ckpt=$2 dir=$3
. "$root/path.sh"

[[ $nj =~ ^[1-9][0-9]*$ ]] || { echo "$0: --nj must be a positive integer, got '$nj'" >&2; exit 1; }
[ -f "$scp" ] || { echo "$0: no such file: $scp" >&2; exit 1; }
[ -f "$ckpt" ] || { echo "$0: no such checkpoint: $ckpt" >&2; exit 1; }
num=$(grep -c . "$scp" || true)
[ "$num" -gt 0 ] || { echo "$0: $scp lists no utterance" >&2; exit 1; }
[ "$nj" -le "$num" ] || nj=$num
mkdir -p "$dir/log"
# shellcheck disable=SC2086  # a2r_opts is a list of options
$cmd --gpu "$gpu" --num-threads 1 JOB=1:"$nj" "$dir/log/a2r.JOB.log" \
  scpc-a2r --job JOB --num-jobs "$nj" $a2r_opts --in-map "$scp" "$ckpt" "$dir"
# every job ends with one "scpc-a2r: W files written, S already present; ..." line
awk -v dir="$dir" '/^scpc-a2r: [0-9]+ files written/ { w += $2; s += $5; h += $8; n++ }
  END { printf "%s: %d files written, %d already present (%.3f h of audio) by %d jobs\n", dir, w, s, h, n }' \
  "$dir"/log/a2r.*.log
if [[ " $a2r_opts " == *" --format kaldi "* ]]; then
  for n in $(seq "$nj"); do cat "$dir/feats.$n.scp"; done | LC_ALL=C sort -k1,1 > "$dir/feats.scp.tmp"
  for n in $(seq "$nj"); do cat "$dir/utt2num_frames.$n"; done | LC_ALL=C sort -k1,1 > "$dir/utt2num_frames"
  mv "$dir/feats.scp.tmp" "$dir/feats.scp"
fi
