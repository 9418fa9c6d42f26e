#!/usr/bin/env bash
# Every SUPERB-style task for a pre-trained model and the baseline rows, then one table.
#
#   local/superb_suite.sh --model cpc.mini-fbank                       # mini corpus, offline
#   local/superb_suite.sh --model cpc.mini-fbank --tasks "pr ks" --baselines fbank
#   local/superb_suite.sh --model cpc.mini-fbank --cmvn false        # the baseline rows without CMVN
#   local/superb_suite.sh --model cpc.small --set real --baselines ""
#
# Each (system, task) is one local/superb_run.sh run with the task's config (finished runs
# are not redone, an interrupted one resumes); --parallel N runs N of them at once (each
# probe is a job of cmd.sh's $cuda_cmd: on a cluster they are all submitted together). The table (test metric of each run: PER/WER/
# EER in %, lower is better; accuracy in %, higher is better) is printed and written to
# exp/<model>/version_<N>/superb/table.csv.
set -euo pipefail
cd "$(dirname "$0")/.."

model=cpc.mini-fbank  # exp/<model>/version_<version>/best.ckpt (from run.sh)
version=0            # experiment version
tasks="pr asr ks sid asv phone_linear phone_1hidden phone_concat spk_frame spk_utt"  # tasks to run
baselines="fbank mfcc"  # reference rows: fbank, mfcc (empty: none)
cmvn=auto            # the baselines' per-utterance CMVN: auto (true, as s3prl's) or false
set=mini             # mini (the committed corpus, offline) or real
device=auto          # cpu, cuda[:N] or auto
ngpu=0               # GPUs per probe asked of the scheduler (cmd.sh's cuda_cmd)
parallel=1           # probes running (or submitted) at once; on a cluster, e.g. 30
datadir=data         # where data dirs are
expdir=exp           # where experiments are
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }

utils/setup_venv.sh >&2
. ./path.sh

commands=$(
for system in model $baselines; do
  for task in $tasks; do
    opts=(--task $task --set $set --device $device --ngpu $ngpu --datadir $datadir --expdir $expdir)
    if [ $system = model ]; then
      opts+=(--model $model --version $version)
    else
      opts+=(--upstream $system --cmvn $cmvn)
    fi
    printf '%q ' local/superb_run.sh "${opts[@]}"; echo
  done
done)
lines=$(utils/run_parallel.sh $parallel <<< "$commands")  # one line a run, in the order given
echo "$lines" >&2
read -r -d '' -a runs < <(awk '{print $NF}' <<< "$lines") || true  # each line ends with its run dir
scpc-superb table --out $expdir/$model/version_$version/superb/table.csv "${runs[@]}"
