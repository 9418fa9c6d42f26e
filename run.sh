#!/usr/bin/env bash
# Pre-training recipe: data -> features -> frozen config -> training -> PCA -> representations.
#
#   ./run.sh                                   # cpc.mini-fbank on the committed mini corpus (minutes, CPU)
#   ./run.sh --stage 3 --model cpc.small       # any conf/model.<name>.yaml
#   ./run.sh --corpus librispeech --libri-dir /corpora/LibriSpeech --train-part 100 --model cpc.small
#   ./run.sh --model cpc.csa4 --seed 3            # exp/cpc.csa4.seed3/version_0, training.seed 3
#
# Stages: 0 data preparation, 1 utterance lengths (utt2num_samples; with a config's
# "feats: precomputed", feature dirs by steps/make_feats.sh instead), 2 freeze the config into
# exp/<model>/version_<N>/model.yaml, 3 training (scpc-train through $cuda_cmd: best.ckpt,
# last.ckpt, metrics.csv, curves.png, train.log; the launcher's log in log/train.log),
# 4 PCA projections, 5 test-set representations and a summary, 6 (mini corpus) ABX of the model
# on the dev and test parts beside filter banks (also with CMVN), MFCCs and the untrained model,
# and of the checkpoints kept along training: its learning curve (local/zrc_run.sh).
# Jobs go through cmd.sh's
# launchers: SCPC_CLUSTER=slurm ./run.sh ... submits them to Slurm.
# Every stage skips finished work, so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")"

stage=0            # first stage to run
stop_stage=100     # last stage to run
corpus=mini        # mini or librispeech
libri_dir=         # an existing LibriSpeech directory (with dev-clean/ ...); empty: download
train_part=100     # LibriSpeech training hours: 100, 460 or 960
model=cpc.mini-fbank  # conf/model.<model>.yaml (or an existing exp/<model>/version_<version>)
version=0          # experiment version: exp/<model>/version_<version>
seed=              # training seed (default: the config's); part of the experiment's name:
                   # exp/<model>.seed<seed>/version_<version>, which the evaluation recipes
                   # take as --model <model>.seed<seed>
nj=2               # parallel jobs (features, extraction)
ngpu=0             # GPUs per node for training, asked of the scheduler by $cuda_cmd (cmd.sh)
nproc=             # training processes per node, DDP when more than one (default: ngpu, or 1)
nodes=1            # training nodes (Slurm); DDP over nodes x nproc processes
pca_dims="32"      # PCA sizes fit in stage 4 (the paper used "8 16 32 64 128"); empty: none
abx_baselines="fbank fbank-cmvn mfcc random"  # stage 6's reference rows (zrc_run.sh --baselines)
datadir=data       # where data dirs (and downloads) go
expdir=exp         # where experiments go
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }
[[ $version =~ ^[0-9]+$ ]] || { echo "$0: --version must be a non-negative integer, not '$version'" >&2; exit 1; }
[[ -z $seed || $seed =~ ^[0-9]+$ ]] || { echo "$0: --seed must be a non-negative integer, not '$seed'" >&2; exit 1; }

utils/setup_venv.sh
. ./path.sh
. ./cmd.sh

em=$expdir/$model${seed:+.seed$seed}/version_$version
conf=conf/model.$model.yaml
seed_opt=(); [ -z "$seed" ] || seed_opt=(-o training.seed=$seed)
if [ -f $em/model.yaml ]; then
  feat_type=$(scpc-config get $em/model.yaml feat_type)
  feats_mode=$(scpc-config get $em/model.yaml feats)
elif [ -f $conf ]; then
  scpc-config check $conf
  feat_type=$(scpc-config get $conf feat_type)
  feats_mode=$(scpc-config get $conf feats)
else
  echo "$0: no $conf and no $em/model.yaml (models: $(cd conf && printf '%s\n' model.*.yaml | sed 's/^model\.\(.*\)\.yaml$/\1/' | tr '\n' ' '))" >&2
  exit 1
fi
case $corpus in
  mini) data=$datadir/mini; train_set=$data/train; valid_set=$data/dev ;;
  librispeech)
    data=$datadir/librispeech
    case $train_part in
      100) train_parts="train-clean-100" ;;
      460) train_parts="train-clean-100 train-clean-360" ;;
      960) train_parts="train-clean-100 train-clean-360 train-other-500" ;;
      *) echo "$0: --train-part must be 100, 460 or 960, not '$train_part'" >&2; exit 1 ;;
    esac
    train_set=$data/train_${train_part}_cpc_train; valid_set=$data/train_clean_100_cpc_val ;;
  *) echo "$0: --corpus must be mini or librispeech, not '$corpus'" >&2; exit 1 ;;
esac

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "Stage 0: data preparation ($corpus)"
  if [ $corpus = mini ]; then
    local/mini_data_prep.sh $data
  elif [ ! -f $train_set/.complete ]; then
    eval_parts="dev-clean dev-other test-clean test-other"
    if [ -z "$libri_dir" ]; then
      libri_dir=$data/download/LibriSpeech
      local/download_librispeech.sh $data/download $eval_parts $train_parts cpc-split
      lists=$data/download
    else
      lists=$data/lists
      local/download_librispeech.sh $lists cpc-split
    fi
    for part in $eval_parts $train_parts; do
      [ -f $data/${part//-/_}/.complete ] && continue
      local/librispeech_data_prep.sh $libri_dir/$part $data/${part//-/_}
      touch $data/${part//-/_}/.complete
    done
    train_dirs=(); for part in $train_parts; do train_dirs+=($data/${part//-/_}); done
    [ $train_part = 100 ] || utils/combine_data.sh $data/train_$train_part "${train_dirs[@]}"
    train_list=$lists/train_clean_100_train_subset.txt
    [ $train_part = 100 ] || train_list=-   # 460/960: everything outside the validation list
    scpc-prep cpc-split $data/train_${train_part/100/clean_100} $train_list \
      $lists/train_clean_100_test_subset.txt $train_set $valid_set
    touch $train_set/.complete
  fi
fi

echo "Data: training set $train_set, validation set $valid_set"

feats=$data/$feat_type
if [ "$feats_mode" = precomputed ]; then
  if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
    echo "Stage 1: $feat_type features of $train_set and $valid_set"
    for set in $train_set $valid_set; do
      steps/make_feats.sh --nj $nj --cmd "$train_cmd" --frontend conf/feats/$feat_type.json \
        $set "$feats/$(basename $set)"
    done
  fi
  train_feats=$feats/$(basename $train_set)
  valid_feats=$feats/$(basename $valid_set)
else
  # the data workers read the audio and compute $feat_type features during training
  if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
    echo "Stage 1: utterance lengths of $train_set and $valid_set ($feat_type computed on the fly)"
    for set in $train_set $valid_set; do scpc-datadir utt2num-samples $set; done
  fi
  train_feats=$train_set
  valid_feats=$valid_set
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "Stage 2: config $em/model.yaml"
  if [ -f $conf ]; then
    scpc-config freeze "${seed_opt[@]}" $conf conf/feats $em/model.yaml
  else
    echo "$conf is gone; $em/model.yaml defines the experiment"
  fi
  # Spin continues an upstream; one of this recipe's own (exp/<m>/version_<v>/best.ckpt of a
  # conf/model.<m>.yaml) is made first when it is missing
  upstream=$(scpc-config get $em/model.yaml training.spin_loss.init_checkpoint)
  if [ -n "$upstream" ] && [ ! -f "$upstream" ]; then
    if [[ $upstream =~ ^$expdir/([^/]+)/version_([0-9]+)/best\.ckpt$ ]] &&
      [ -f conf/model.${BASH_REMATCH[1]}.yaml ]; then
      echo "Stage 2: $model continues $upstream, which is missing: run.sh --model ${BASH_REMATCH[1]} first"
      ./run.sh --corpus $corpus --libri-dir "$libri_dir" --train-part $train_part \
        --datadir $datadir --expdir $expdir --nj $nj --ngpu $ngpu --nproc "$nproc" --nodes $nodes \
        --model "${BASH_REMATCH[1]}" --version "${BASH_REMATCH[2]}" --stop-stage 3
    else
      echo "$0: $model continues $upstream, which does not exist (train or scpc-import it first)" >&2
      exit 1
    fi
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "Stage 3: training $model (version $version) on $train_feats"
  if [ -f $em/.train_complete ]; then
    echo "$em/best.ckpt exists (remove $em/.train_complete to train further)"
  elif [ "$(scpc-config get $em/model.yaml training.max_steps)" = 0 ]; then
    echo "training.max_steps is 0: best.ckpt is the model as initialised (scpc-init)"
    scpc-init model $em/model.yaml $em/best.ckpt --seed "$(scpc-config get $em/model.yaml training.seed)"
    touch $em/.train_complete
  else
    [ -n "$nproc" ] || { nproc=$ngpu; [ $nproc -gt 0 ] || nproc=1; }
    echo "$nodes x $nproc process(es) through \$cuda_cmd ($cuda_cmd); log: $em/log/train.log"
    if ! $cuda_cmd --gpu $ngpu --nodes $nodes --procs-per-node $nproc $em/log/train.log \
        scpc-train $em/model.yaml $train_feats $valid_feats; then
      # a re-run helps only when training was stopped, not when it failed
      why=$(grep -E '^scpc-train: ' $em/log/train.log | tail -n 1 || true)
      case $why in
        *"run again to resume"*) echo "$0: ${why#scpc-train: }" >&2 ;;
        "") echo "$0: training did not finish (killed?); see $em/log/train.log; run again to resume" >&2 ;;
        *) echo "$0: training failed: ${why#scpc-train: } (see $em/log/train.log)" >&2 ;;
      esac
      exit 1
    fi
    [ -f $em/best.ckpt ] || { echo "$0: training ended without $em/best.ckpt; see $em/log/train.log" >&2; exit 1; }
    # the local launcher showed the log on a terminal; elsewhere, its last lines
    [ -t 1 ] || grep -E 'epoch [0-9]+ step|done' $em/train.log | tail -n 3 || true
    touch $em/.train_complete
  fi
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "Stage 4: PCA (${pca_dims:-none}) on $valid_set"
  for k in $pca_dims; do
    [ -f $em/pca_$k.pt ] || scpc-pca $valid_set $em/best.ckpt $k $em/pca_$k.pt
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  test_set=$data/test
  [ $corpus = mini ] || test_set=$data/test_clean
  reps=$em/reps/$(basename $test_set)
  echo "Stage 5: representations of $test_set"
  steps/make_reps.sh --nj $nj --cmd "$train_cmd" $test_set/wav.scp $em/best.ckpt $reps
  echo
  echo "Summary of $em"
  scpc-info $em/best.ckpt
  echo "outputs: $em/{model.yaml,best.ckpt,last.ckpt,metrics.csv,curves.png,train.log,log/}"
  [ -z "$pca_dims" ] || echo "PCA:     $(printf '%s ' $em/pca_*.pt)"
  echo "reps:    $reps ($(find $reps -name '*.pt' | wc -l) files, scpc-a2r $test_set -> .pt (frames, channels))"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  if [ $corpus = mini ]; then
    echo
    echo "Stage 6: ABX of $model on the mini corpus's dev and test parts"
    kept=false; [ ! -d $em/checkpoints ] || kept=true  # training.keep_checkpoint_every_epochs
    local/zrc_run.sh --model $model${seed:+.seed$seed} --version $version --set mini \
      --baselines "$abx_baselines" --checkpoints $kept --nj $nj --datadir $datadir --expdir $expdir
  else
    echo "Stage 6: ABX on LibriSpeech is ZeroSpeech's abxLS (network): local/zrc_run.sh --model $model${seed:+.seed$seed} --version $version --set abxLS"
  fi
fi
