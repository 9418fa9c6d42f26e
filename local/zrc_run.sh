#!/usr/bin/env bash
# ZeroSpeech ABX (phone discriminability) of a pre-trained model, with reference rows.
#
#   local/zrc_run.sh --model cpc.mini-fbank --version 0          # mini corpus dev + test, offline
#   local/zrc_run.sh --model cpc.small --pca 32            # score run.sh's pca_32.pt projection
#   local/zrc_run.sh --model cpc.small --set abxLS         # the ZeroSpeech benchmark (network)
#   local/zrc_run.sh --model cpc.mini-fbank --checkpoints true   # also every kept checkpoint: learning curve
#
# For every system (the model, and the baselines: 41-dim log filter banks, the same with
# per-utterance CMVN, 13 MFCCs, and the model's architecture as initialised, before training) and every part, representations are
# extracted with scpc-a2r and scored with scpc-abx in the four conditions (within/across
# speaker x within/any context). Scores go to exp/<model>/version_<N>/abx/<set>/, one CSV per
# system and part plus scores.csv with all of them, and an aligned table is printed.
# Finished extractions and scores are skipped, so a re-run only adds what is missing.
#
# --checkpoints true also scores the checkpoints that training kept along the way
# (training.keep_checkpoint_every_epochs: checkpoints/epoch<N>.ckpt) and writes their learning
# curve with scpc-learning-curve: abx/<set>/learning_curve/{learning_curve.csv,table.txt,
# learning_curve.png}, ABX against training time (from the untrained model's row at 0 when
# random is among the baselines) beside the other reference rows.
#
# --set abxLS is ZeroSpeech's LibriSpeech ABX through zerospeech-benchmarks' zrc (installed
# into .venv by utils/setup_zrc.sh): zrc datasets:pull abxLS-dataset (into $APP_DIR, default
# data/zerospeech), one zrc submission:init abxLS per system with params.yaml and meta.yaml
# rendered from conf/zrc/, float64 .npy representations of dev/test-clean/other, zrc
# benchmarks:run abxLS; its scores are then tabled like the mini set's. It needs the network
# and says so in one line when there is none.
#
# Stages (--stage/--stop-stage): 0 the evaluation set, 1 the reference rows' checkpoints,
# 2 representations and scores of every system and part, 3 the table.
set -euo pipefail
cd "$(dirname "$0")/.."

model=cpc.mini-fbank            # exp/<model>/version_<version>/best.ckpt (from run.sh)
version=0                       # experiment version
pca=                            # score the model's pca_<pca>.pt projection (run.sh stage 4)
set=mini                        # evaluation set: mini (the committed corpus, offline) or abxLS
parts=                          # parts to score (default: mini "dev test"; abxLS all four)
baselines="fbank mfcc random"   # reference rows: fbank, fbank-cmvn, mfcc, random (empty: none)
checkpoints=false               # true: also the kept checkpoints/epoch<N>.ckpt (learning curve)
distance=cosine                 # frame distance: cosine, euclidean, kl or kl_symmetric
nj=2                            # extraction processes
datadir=data                    # where data dirs are
expdir=exp                      # where experiments are
zrc="scpc-zrc zrc"              # the zrc command (abxLS; default: zerospeech-benchmarks')
stage=0                         # first stage to run
stop_stage=100                  # last stage to run
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }

utils/setup_venv.sh
. ./path.sh
. ./cmd.sh

. local/upstream.sh
model_ckpt=$(trained_checkpoint $expdir $model $version)
em=${model_ckpt%/best.ckpt}
case $set in
  mini) data=$datadir/mini; parts=${parts:-dev test} ;;
  abxLS)
    parts=${parts:-dev-clean dev-other test-clean test-other}
    export APP_DIR=${APP_DIR:-$datadir/zerospeech} ;;  # zrc's dataset store
  *) echo "$0: --set must be mini or abxLS, not '$set'" >&2; exit 1 ;;
esac
if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  if [ $set = mini ]; then
    [ -f $data/.complete ] || local/mini_data_prep.sh $data
  elif [ ! -f $APP_DIR/.abxLS.complete ]; then
    scpc-zrc check  # one line and exit 1 when offline
    [ "$zrc" != "scpc-zrc zrc" ] || utils/setup_zrc.sh
    $zrc datasets:pull abxLS-dataset
    touch $APP_DIR/.abxLS.complete
  fi
fi
pca_opt=(); tag=$model
if [ -n "$pca" ]; then
  [ -f $em/pca_$pca.pt ] || { echo "$0: no $em/pca_$pca.pt; run ./run.sh --stage 4 --pca-dims $pca" >&2; exit 1; }
  pca_opt=(--pca-file $em/pca_$pca.pt); tag=$model.pca_$pca
fi
abx=$em/abx/$set

echo "ABX of $em on $set ($parts), $distance distance"
systems=("$tag:$model_ckpt")
for b in $baselines; do
  case $b in
    fbank|fbank-cmvn|mfcc|random) ;;
    *) echo "$0: unknown baseline '$b' (fbank, fbank-cmvn, mfcc, random)" >&2; exit 1 ;;
  esac
  systems+=("$b:$abx/baselines/$b.ckpt")
done
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  for b in $baselines; do  # the fbank row is ZeroSpeech's 41 filter banks
    kind=$b; [ $b != fbank ] || kind=fbank41
    reference_checkpoint $kind $abx/baselines/$b.ckpt $em/model.yaml
  done
fi

# zrc's abxLS: one submission per system, scored by zrc, converted to scpc-abx CSVs
zrc_score() {  # name ckpt [--pca-file F]
  local name=$1 ckpt=$2 sub=$abx/submission/$1 pca_arg=(); shift 2
  [ $# -eq 0 ] || pca_arg=(--pca $pca)
  # zrc selects subsets as sets x tasks: dev-clean -> -s dev -t clean
  local sets tasks
  sets=$(printf '%s\n' $parts | cut -d- -f1 | sort -u)
  tasks=$(printf '%s\n' $parts | cut -d- -f2 | sort -u)
  [ -d $sub ] || $zrc submission:init abxLS $sub
  scpc-zrc params --checkpoint $ckpt --distance $distance $sub/params.yaml
  scpc-zrc meta --checkpoint $ckpt "${pca_arg[@]}" $sub/meta.yaml
  for s in $sets; do
    for t in $tasks; do
      scpc-zrc wav-scp $APP_DIR $s-$t $abx/lists/$s-$t.scp
      steps/make_reps.sh --nj $nj --cmd "$train_cmd" --a2r-opts "$* --numpy --dtype float64" \
        $abx/lists/$s-$t.scp $ckpt $sub/$s-$t
    done
  done
  $zrc benchmarks:run abxLS $sub -s $sets -t $tasks
  scpc-zrc collect --distance $distance $sub $name $abx
}

entries=()  # name:part:scores of every system and part, in order
for system in "${systems[@]}"; do
  for part in $parts; do entries+=("${system%%:*}:$part:$abx/${system%%:*}.$part.csv"); done
done
curve=()  # ckpt:part:scores of the kept checkpoints (--checkpoints true), in epoch order
case $checkpoints in
  true)
    kept=$(printf '%s\n' $em/checkpoints/epoch*.ckpt | grep -v '\*' | sort -V || true)
    [ -n "$kept" ] || { echo "$0: no $em/checkpoints/epoch*.ckpt; train with training.keep_checkpoint_every_epochs set" >&2; exit 1; }
    for ckpt in $kept; do
      name=$model.$(basename $ckpt .ckpt)
      systems+=("$name:$ckpt")
      for part in $parts; do curve+=("$ckpt:$part:$abx/$name.$part.csv"); done
    done ;;
  false) ;;
  *) echo "$0: --checkpoints must be true or false, not '$checkpoints'" >&2; exit 1 ;;
esac
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  for system in "${systems[@]}"; do
    name=${system%%:*}; ckpt=${system#*:}
    opts=(); [ $name != $tag ] || opts=("${pca_opt[@]}")  # PCA was fit on best.ckpt only
    if [ $set = abxLS ]; then
      missing=$(for part in $parts; do [ -f $abx/$name.$part.csv ] || echo $part; done)
      [ -z "$missing" ] || zrc_score $name $ckpt "${opts[@]}"
    fi
    for part in $parts; do
      scores=$abx/$name.$part.csv
      if [ ! -f $scores ]; then
        [ $set = mini ] ||
          { echo "$0: zrc gave no $part scores for $name (see $abx/submission/$name/scores)" >&2; exit 1; }
        reps=$abx/reps/$name/$part
        steps/make_reps.sh --nj $nj --cmd "$train_cmd" --a2r-opts "${opts[*]}" $data/$part/wav.scp $ckpt $reps
        # --checkpoint: item times map to frames at the model's own rate (80 ms for SPIRAL)
        $decode_cmd $abx/log/abx.$name.$part.log \
          scpc-abx --distance $distance --checkpoint $ckpt --out $scores $reps $data/$part/abx.item
        rm -r $reps  # representations are cheap to remake and large on real sets
      fi
    done
  done
fi
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo
  scpc-abx-table $abx/scores.csv "${entries[@]}"
  echo "ABX error (%), lower is better; scores in $abx/scores.csv"
  if [ ${#curve[@]} -gt 0 ]; then
    refs=()  # the untrained model starts the curve at epoch 0
    for b in $baselines; do
      for part in $parts; do
        if [ $b = random ]; then refs+=(--untrained "$part:$abx/$b.$part.csv")
        else refs+=(--reference "$b:$part:$abx/$b.$part.csv"); fi
      done
    done
    echo
    scpc-learning-curve --out-dir $abx/learning_curve --model $model "${refs[@]}" "${curve[@]}"
  fi
fi
