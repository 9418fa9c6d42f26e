#!/usr/bin/env bash
# One run of local/context_sweep.sh: train <model> with --seed (run.sh stages 2-3; the sweep
# prepared the data first, once for all runs), then the --evals: abx (local/zrc_run.sh, no
# reference rows), pr (local/superb_run.sh --task pr: the phone-recognition probe's PER) and
# baseline (local/baseline_run.sh: the CTC baseline's WER). Prints one line per score file:
# "abx WIDTH:SEED:PART:CSV" per part scored, "result WIDTH:SEED:KIND:JSON" per probe or baseline.
# Its recipes' output goes to exp/<model>.seed<seed>/version_0/log/sweep.log.
set -euo pipefail
cd "$(dirname "$0")/.."

width=          # the context width the model has (for the sweep's table)
seed=0
model=
corpus=mini
libri_dir=
abx_set=mini
abx_parts=
evals=abx       # any of: abx pr baseline
nj=2
ngpu=0
datadir=data
expdir=exp
. utils/parse_options.sh
if [ -z "$model" ] || [ -z "$width" ]; then echo "$0: --model and --width are required" >&2; exit 1; fi

run=$model.seed$seed
em=$expdir/$run/version_0
mkdir -p $em/log
log=$em/log/sweep.log
echo "# $(date -u +%FT%TZ) $0 --model $model --seed $seed" >> $log
./run.sh --corpus $corpus --libri-dir "$libri_dir" --model $model --seed $seed --stage 2 --stop-stage 3 \
  --nj $nj --ngpu $ngpu --datadir $datadir --expdir $expdir >> $log 2>&1 ||
  { echo "$0: training $run failed; see $log" >&2; exit 1; }
eval_set=mini; [ $corpus = mini ] || eval_set=real  # the probe's and the baseline's --set
for e in $evals; do
  case $e in
    abx)
      parts_opt=(); [ -z "$abx_parts" ] || parts_opt=(--parts "$abx_parts")
      local/zrc_run.sh --model $run --set $abx_set "${parts_opt[@]}" --baselines "" --nj $nj \
        --datadir $datadir --expdir $expdir >> $log 2>&1 ||
        { echo "$0: ABX of $run failed; see $log" >&2; exit 1; } ;;
    pr)
      local/superb_run.sh --task pr --model $run --set $eval_set --ngpu $ngpu \
        --datadir $datadir --expdir $expdir >> $log 2>&1 ||
        { echo "$0: the phone-recognition probe of $run failed; see $log" >&2; exit 1; } ;;
    baseline)
      local/baseline_run.sh --model $run --set $eval_set --libri-dir "$libri_dir" --nj $nj \
        --ngpu $ngpu --datadir $datadir --expdir $expdir >> $log 2>&1 ||
        { echo "$0: the CTC baseline of $run failed; see $log" >&2; exit 1; } ;;
    *) echo "$0: unknown evaluation '$e' (abx, pr, baseline)" >&2; exit 1 ;;
  esac
done
echo "$0: $run done" >&2
for e in $evals; do
  case $e in
    abx)
      for csv in "$em/abx/$abx_set/$run".*.csv; do
        part=${csv#"$em/abx/$abx_set/$run."}; part=${part%.csv}
        echo "abx $width:$seed:$part:$csv"
      done ;;
    pr) name="pr"; [ $eval_set = mini ] || name="pr.$eval_set"  # superb_run.sh's run name
        echo "result $width:$seed:pr:$em/superb/$name/results.json" ;;
    baseline) echo "result $width:$seed:baseline:$em/baseline/full/decode/results.json" ;;
  esac
done
