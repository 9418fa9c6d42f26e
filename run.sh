#!/usr/bin/env bash
# Pre-training recipe. Stage 0 prepares the data: the committed mini corpus by default
# (offline, seconds), or LibriSpeech (downloaded unless --libri-dir is given) with the CPC
# paper's train/validation split of train-clean-100.
#
#   ./run.sh                                          # mini corpus
#   ./run.sh --corpus librispeech --libri-dir /corpora/LibriSpeech --train-part 100
set -euo pipefail
cd "$(dirname "$0")"

stage=0            # first stage to run
stop_stage=100     # last stage to run
corpus=mini        # mini or librispeech
libri_dir=         # an existing LibriSpeech directory (with dev-clean/ ...); empty: download
train_part=100     # LibriSpeech training hours: 100, 460 or 960
nj=2               # parallel jobs
datadir=data       # where data dirs (and downloads) go
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }

utils/setup_venv.sh
. ./path.sh

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
