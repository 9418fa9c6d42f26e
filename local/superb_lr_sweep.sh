#!/usr/bin/env bash
# SUPERB's learning-rate search: the task's config with each learning rate, the best by dev
# metric (test for tasks without a dev set, as SUPERB reports ASV).
#
#   local/superb_lr_sweep.sh --task pr --model cpc.mini-fbank --lrs "1e-2 1e-3 1e-4"
#   local/superb_lr_sweep.sh --task pr --upstream fbank -- --layer 0   # more superb_run.sh options
#
# Each rate is one local/superb_run.sh run (<name>.lr<rate>; finished ones are not redone);
# --parallel N trains N rates at once (each probe is a job of cmd.sh's $cuda_cmd).
# Prints an aligned table (lr, dev and test metric, run) and writes the choice, with every
# run's scores, to <upstream dir>/superb/<name>.lr_sweep.json.
set -euo pipefail
cd "$(dirname "$0")/.."

task="pr"            # the task (see local/superb_run.sh --help)
lrs="1e-2 1e-3 1e-4" # learning rates to try (SUPERB: a log-scale sweep)
model=cpc.mini-fbank  # exp/<model>/version_<version>/best.ckpt
version=0            # experiment version
upstream=            # a baseline instead of the model: fbank or mfcc
set=mini             # mini or real
parallel=1           # rates trained (or submitted) at once
datadir=data         # where data dirs are
expdir=exp           # where experiments are
. utils/parse_options.sh
# anything after the options goes to every local/superb_run.sh call (--layer, --finetune, ...)

echo "$0: lr $lrs" >&2
commands=$(
for lr in $lrs; do
  printf '%q ' local/superb_run.sh --task $task --model $model --version $version --upstream "$upstream" \
    --set $set --datadir $datadir --expdir $expdir --lr $lr "$@"; echo
done)
lines=$(utils/run_parallel.sh $parallel <<< "$commands")  # one line a run, in the order given
echo "$lines" >&2
read -r -d '' -a runs < <(awk '{print $NF}' <<< "$lines") || true  # each line ends with its run dir
. ./path.sh
first=${runs[0]}
out=$(dirname $first)/$(basename ${first%.lr*}).lr_sweep.json
scpc-superb pick --out $out "${runs[@]}"
echo "choice: $out"
