#!/usr/bin/env bash
# ZeroSpeech ABX (phone discriminability) of a pre-trained model, with reference rows.
#
#   local/zrc_run.sh --model cpc.mini --version 0          # mini corpus dev + test, offline
#   local/zrc_run.sh --model cpc.small --pca 32            # score run.sh's pca_32.pt projection
#
# For every system (the model, and the baselines: 41-dim log filter banks, 13 MFCCs, and the
# model's architecture as initialised, before training) and every part, representations are
# extracted with scpc-a2r and scored with scpc-abx in the four conditions (within/across
# speaker x within/any context). Scores go to exp/<model>/version_<N>/abx/<set>/, one CSV per
# system and part plus scores.csv with all of them, and an aligned table is printed.
# Finished extractions and scores are skipped, so a re-run only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

model=cpc.mini                  # exp/<model>/version_<version>/best.ckpt (from run.sh)
version=0                       # experiment version
pca=                            # score the model's pca_<pca>.pt projection (run.sh stage 4)
set=mini                        # evaluation set: mini (the committed corpus, offline)
parts="dev test"                # parts of the set to score
baselines="fbank mfcc random"   # reference rows: fbank, mfcc, random (empty: none)
distance=cosine                 # frame distance: cosine, euclidean, kl or kl_symmetric
nj=2                            # extraction processes
datadir=data                    # where data dirs are
expdir=exp                      # where experiments are
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }

utils/setup_venv.sh
. ./path.sh

em=$expdir/$model/version_$version
[ -f $em/best.ckpt ] ||
  { echo "$0: no $em/best.ckpt; train it first: ./run.sh --model $model --version $version" >&2; exit 1; }
case $set in
  mini) data=$datadir/mini; [ -f $data/.complete ] || local/mini_data_prep.sh $data ;;
  *) echo "$0: --set must be mini, not '$set'" >&2; exit 1 ;;
esac
pca_opt=(); tag=$model
if [ -n "$pca" ]; then
  [ -f $em/pca_$pca.pt ] || { echo "$0: no $em/pca_$pca.pt; run ./run.sh --stage 4 --pca-dims $pca" >&2; exit 1; }
  pca_opt=(--pca-file $em/pca_$pca.pt); tag=$model.pca_$pca
fi
abx=$em/abx/$set

echo "ABX of $em on $set ($parts), $distance distance"
systems=("$tag:$em/best.ckpt")
for b in $baselines; do
  ckpt=$abx/baselines/$b.ckpt
  if [ ! -f $ckpt ]; then
    case $b in
      fbank) scpc-init frontend conf/feats/fbank-41.json $ckpt ;;
      mfcc) scpc-init frontend conf/feats/mfcc-13.json $ckpt ;;
      random) scpc-init model $em/model.yaml $ckpt ;;
      *) echo "$0: unknown baseline '$b' (fbank, mfcc, random)" >&2; exit 1 ;;
    esac
  fi
  systems+=("$b:$ckpt")
done

entries=()
for system in "${systems[@]}"; do
  name=${system%%:*}; ckpt=${system#*:}
  opts=(); [ $name != $tag ] || opts=("${pca_opt[@]}")
  for part in $parts; do
    scores=$abx/$name.$part.csv
    if [ ! -f $scores ]; then
      reps=$abx/reps/$name/$part
      scpc-a2r --nj $nj "${opts[@]}" --in-map $data/$part/wav.scp $ckpt $reps
      scpc-abx --distance $distance --out $scores $reps $data/$part/abx.item
      rm -r $reps  # representations are cheap to remake and large on real sets
    fi
    entries+=("$name:$part:$scores")
  done
done
echo
scpc-abx-table $abx/scores.csv "${entries[@]}"
echo "ABX error (%), lower is better; scores in $abx/scores.csv"
