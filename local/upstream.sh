# shellcheck shell=bash
# Sourced by the evaluation recipes (superb_run.sh, baseline_run.sh, zrc_run.sh): where the
# upstream checkpoint of an evaluation comes from. After path.sh (scpc-init on PATH).
#
#   trained_checkpoint EXPDIR MODEL VERSION
#       prints EXPDIR/MODEL/version_VERSION/best.ckpt; fails, saying how to train it, when the
#       model has not been trained
#   reference_checkpoint KIND CKPT [MODEL_YAML]
#       makes CKPT once with scpc-init: fbank (80 log filter banks, s3prl's FBANK upstream),
#       fbank41 (41 log filter banks), fbank-cmvn (the same with per-utterance CMVN), mfcc
#       (13 MFCCs), or random (MODEL_YAML's architecture as initialised, before training)
#   select_upstream UPSTREAM EXPDIR MODEL VERSION
#       sets base (the directory the results go under) and ckpt: with UPSTREAM (fbank or mfcc)
#       a reference upstream under EXPDIR/baselines/UPSTREAM/ (made by reference_checkpoint),
#       else the trained model's experiment

trained_checkpoint() {
  local ckpt=$1/$2/version_$3/best.ckpt
  [ -f "$ckpt" ] ||
    { echo "$0: no $ckpt; train it first: ./run.sh --model $2 --version $3" >&2; return 1; }
  echo "$ckpt"
}

reference_checkpoint() {
  local kind=$1 ckpt=$2 model_yaml=${3:-}
  [ ! -f "$ckpt" ] || return 0
  case $kind in
    fbank) scpc-init frontend conf/feats/fbank-80.json "$ckpt" >&2 ;;
    fbank41) scpc-init frontend conf/feats/fbank-41.json "$ckpt" >&2 ;;
    fbank-cmvn) scpc-init model conf/reference/fbank-cmvn.yaml "$ckpt" --feats-dir conf/feats >&2 ;;
    mfcc) scpc-init frontend conf/feats/mfcc-13.json "$ckpt" >&2 ;;
    random)
      [ -n "$model_yaml" ] || { echo "$0: a random upstream needs a model.yaml" >&2; return 1; }
      scpc-init model "$model_yaml" "$ckpt" >&2 ;;
    *) echo "$0: unknown reference upstream '$kind' (fbank, fbank41, fbank-cmvn, mfcc, random)" >&2; return 1 ;;
  esac
}

select_upstream() {
  local upstream=$1 expdir=$2 model=$3 version=$4
  if [ -n "$upstream" ]; then
    case $upstream in
      fbank|mfcc) ;;
      *) echo "$0: unknown --upstream '$upstream' (fbank, mfcc)" >&2; return 1 ;;
    esac
    base=$expdir/baselines/$upstream; ckpt=$base/best.ckpt
  else
    ckpt=$(trained_checkpoint "$expdir" "$model" "$version") || return 1
    base=${ckpt%/best.ckpt}
  fi
}
