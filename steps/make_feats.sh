#!/usr/bin/env bash
# Computes the features of a Kaldi data dir (wav.scp [+ segments] [+ ali.txt]) into a feature
# dir that pydrobert-pytorch's SpectDataSet reads:
#   <feat-dir>/feat/<utt>.pt   float32 (T, F)        <feat-dir>/ali/<utt>.pt   long (T,)
#   <feat-dir>/ext/utt2spk     <feat-dir>/frontend.json     <feat-dir>/.complete
# The utterances are split over --nj jobs run through --cmd (logs in <feat-dir>/log). A re-run
# resumes an interrupted one, skips a complete dir, and refuses a dir made with another front-end.
# With --import-scp feats.scp, existing Kaldi features (fMLLR, MFCCs, ...) of the data dir's
# utterances are copied in instead, under a front-end of kind "kaldi" (its size and frame shift,
# from the frame_shift file beside the scp, else 10 ms); a model of another front-end refuses it.
#
# Usage: steps/make_feats.sh [--nj 2] [--cmd "$train_cmd"] [--frontend conf/feats/fbank-80.json] \
#          <data-dir> <feat-dir>
#   e.g. steps/make_feats.sh --nj 8 --frontend conf/feats/fbank-41.json data/mini/dev feats/fbank-41/dev
#        steps/make_feats.sh --import-scp data/dev/feats.scp data/mini/dev feats/fmllr/dev
set -euo pipefail
# "declare": these two are not options, so --help does not list them
declare root; root=$(cd "$(dirname "$0")/.." && pwd)
nj=2                               # parallel jobs
cmd=run_local.sh                   # job launcher, e.g. "$train_cmd" from cmd.sh
frontend=conf/feats/fbank-80.json  # front-end config: conf/feats/{raw,fbank-41,fbank-80}.json
import_scp=                        # import these Kaldi features (a feats.scp) instead
declare help_message="Usage: $0 [options] <data-dir> <feat-dir>"
. "$root/utils/parse_options.sh"
[ $# -eq 2 ] || { echo "$help_message" >&2; exit 1; }
data=$1
dir=$2
. "$root/path.sh"  # scpc-feats, and utils/ for the launcher

if [ -n "$import_scp" ]; then
  scpc-feats --import-scp "$import_scp" "$data" "$dir"
  exit 0
fi
[[ $nj =~ ^[1-9][0-9]*$ ]] || { echo "$0: --nj must be a positive integer, got '$nj'" >&2; exit 1; }
# a relative front-end path may be relative to the repository instead of the current dir
[ -f "$frontend" ] || [ ! -f "$root/$frontend" ] || frontend=$root/$frontend

# checks the front-end, the data dir and any existing feature dir before any job starts
scpc-feats --check --frontend "$frontend" "$data" "$dir"
if [ -f "$dir/.complete" ]; then
  echo "$0: $dir is already complete (remove $dir/.complete to redo)"
  exit 0
fi
mkdir -p "$dir/log"
echo "$0: computing features of $data into $dir with $nj jobs (logs in $dir/log)"
# one thread per job: the jobs themselves are the parallelism
$cmd --num-threads 1 JOB=1:"$nj" "$dir/log/make_feats.JOB.log" \
  scpc-feats --frontend "$frontend" --job JOB --num-jobs "$nj" "$data" "$dir"
# checks that every utterance is done, copies utt2spk, and writes .complete
scpc-feats --frontend "$frontend" "$data" "$dir"
