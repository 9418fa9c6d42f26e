#!/usr/bin/env bash
# SUPERB-style probe of a pre-trained model, or of a filter-bank / MFCC baseline, on one task.
#
#   local/superb_run.sh --task pr --model cpc.mini-fbank                 # mini corpus, offline
#   local/superb_run.sh --task pr --upstream fbank                 # the 80-dim log filter-bank row
#   local/superb_run.sh --task asr --model cpc.small --set real --lr 1e-4
#   local/superb_run.sh --task pr --feats-scp data/mfcc/feats.scp --cmvn true   # Kaldi features
#
# The upstream is exp/<model>/version_<N>/best.ckpt (from run.sh), or with --upstream a
# baseline made once with scpc-init (fbank: conf/feats/fbank-80.json, mfcc: mfcc-13.json,
# both probed with per-utterance CMVN unless --cmvn false, as s3prl's baseline upstreams)
# under exp/baselines/<upstream>/, or with --feats-scp precomputed features in a Kaldi table
# (Kaldi's own feats.scp or scpc-a2r --format kaldi's; keyed by utterance id, frame rate from
# the frame_shift file beside it, else 10 ms), probed frozen as one layer. The config is
# conf/superb.<task>.mini.yaml (--set mini) or conf/superb.<task>.yaml (--set real), or
# --config. Results go to (for --feats-scp, <upstream dir> is the table's directory)
#   <upstream dir>/superb/<name>/{results.json, metrics.csv, curves.png, train.log,
#                                 dev-best.ckpt, last.ckpt, config.yaml}
# where <name> is the task plus a suffix for each option that differs from its default
# (pr, pr.real, pr.layer2, pr.ft, pr.cmvn-false, pr.lr1e-3, ...). The probe runs through
# $cuda_cmd (cmd.sh), its output in <name>/log/train.log. Only one line goes to stdout: task,
# upstream, test metric; everything else goes to stderr and the logs. A finished run is not
# redone (its line is printed again); an interrupted one resumes.
#
# Stages (--stage/--stop-stage): 0 data and the reference upstream, 1 the probe, 2 its result.
set -euo pipefail
cd "$(dirname "$0")/.."

task="pr"            # pr asr ks sid asv, or a legacy probe: phone_linear phone_1hidden phone_concat spk_frame spk_utt
model=cpc.mini-fbank  # exp/<model>/version_<version>/best.ckpt (from run.sh)
version=0            # experiment version
upstream=            # probe a baseline instead of the model: fbank or mfcc
feats_scp=           # probe precomputed features instead: a Kaldi feats.scp
layer=               # probe this hidden state alone (default: learnable weighted sum)
finetune=false       # train the upstream with the head
cmvn=auto            # per-utterance CMVN of the features: true, false, auto (true for fbank/mfcc as s3prl's, false for models)
lr=                  # learning rate (default: the config's, SUPERB's)
set=mini             # mini (the committed corpus, offline) or real (LibriSpeech, ...)
task_config=         # superb config (default: conf/superb.<task>.mini.yaml or conf/superb.<task>.yaml); also --config
run_name=            # run directory name (default: the task plus the options that differ)
device=auto          # cpu, cuda[:N] or auto
ngpu=0               # GPUs asked of the scheduler for the probe by $cuda_cmd (cmd.sh)
stage=0              # first stage to run
stop_stage=100       # last stage to run
datadir=data         # where data dirs are
expdir=exp           # where experiments are
# --config F names the superb config here (utils/parse_options.sh's --config, a file of options, is not used)
args=(); while [ $# -gt 0 ]; do case $1 in --config) args+=(--task-config); shift ;; --config=*) args+=("--task-config=${1#*=}"); shift ;; *) args+=("$1"); shift ;; esac; done
set -- "${args[@]}"; unset args
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }

utils/setup_venv.sh >&2
. ./path.sh
. ./cmd.sh

case $set in
  mini) default_config=conf/superb.$task.mini.yaml ;;
  real) default_config=conf/superb.$task.yaml ;;
  *) echo "$0: --set must be mini or real, not '$set'" >&2; exit 1 ;;
esac
name=$run_name
if [ -z "$name" ]; then
  if [ -n "$task_config" ]; then name=$(basename $task_config .yaml); name=${name#superb.}; else name=$task; fi
  [ $set = mini ] || [ -n "$task_config" ] || name=$name.$set
  [ -z "$layer" ] || name=$name.layer$layer
  ! $finetune || name=$name.ft
  [ $cmvn = auto ] || name=$name.cmvn-$cmvn
  [ -z "$lr" ] || name=$name.lr$lr
fi
config=${task_config:-$default_config}
[ -f $config ] || { echo "$0: no $config (tasks: $(scpc-superb tasks | tr '\n' ' '))" >&2; exit 1; }

opts=(--datadir $datadir --device $device)
[ -z "$layer" ] || opts+=(--layer $layer)
! $finetune || opts+=(--finetune)
[ -z "$lr" ] || opts+=(--lr $lr)
. local/upstream.sh
if [ -n "$feats_scp" ]; then
  [ -z "$upstream" ] || { echo "$0: give --upstream or --feats-scp, not both" >&2; exit 1; }
  [ -f "$feats_scp" ] || { echo "$0: no such file: $feats_scp" >&2; exit 1; }
  ckpt=$feats_scp; base=$(dirname "$feats_scp")
else
  select_upstream "$upstream" $expdir $model $version  # sets base and ckpt
fi
if [ -n "$upstream" ] && [ $cmvn = auto ]; then
  cmvn=true  # as s3prl's fbank/mfcc baseline upstreams
fi

case $cmvn in
  true|false) opts+=(-o featurizer.cmvn=$cmvn) ;;
  auto) ;;
  *) echo "$0: --cmvn must be true, false or auto, not '$cmvn'" >&2; exit 1 ;;
esac

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  [ $set != mini ] || [ -f $datadir/mini/.complete ] || local/mini_data_prep.sh $datadir/mini >&2
  [ -z "$upstream" ] || reference_checkpoint $upstream $ckpt
fi
if [ $set = real ]; then
  libri=$datadir/librispeech
  case $task in
    pr)
      lexicon=$libri/download/librispeech-lexicon.txt
      opts+=(-o task.lexicon=$lexicon)
      if [ $stage -le 0 ] && [ ! -f $lexicon ]; then
        local/download_librispeech.sh $libri/download librispeech-lexicon.txt >&2
      fi ;;
    phone_linear|phone_1hidden|phone_concat)
      # s3prl's legacy split: 90% of the CPC training list to train, 10% to dev
      src=$libri/train_clean_100_cpc_train; probe=$libri/phone_probe
      if [ $stage -le 0 ] && [ ! -f $probe/.complete ]; then
        [ -f $src/ali.txt ] || { echo "$0: $src/ali.txt missing: attach the CPC alignments" \
          "(scpc-prep attach-alignments $src ALI PHONES)" >&2; exit 1; }
        mkdir -p $probe
        awk 'NR % 10 == 0 {print $1}' $src/utt2spk > $probe/dev.list
        awk 'NR % 10 != 0 {print $1}' $src/utt2spk > $probe/train.list
        utils/subset_data_dir.sh --utt-list $probe/dev.list $src $probe/dev >&2
        utils/subset_data_dir.sh --utt-list $probe/train.list $src $probe/train >&2
        touch $probe/.complete
      fi ;;
  esac
fi

out=$base/superb/$name
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  mkdir -p $out
  echo "$0: $task on $ckpt ($config) -> $out (log: $out/log/train.log)" >&2
  $cuda_cmd --gpu $ngpu $out/log/train.log \
    scpc-superb train --task $task --config $config --upstream $ckpt --out $out "${opts[@]}" ||
    { echo "$0: the probe failed or stopped; see $out/log/train.log (run again to resume)" >&2; exit 1; }
fi
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  scpc-superb show $out
fi
