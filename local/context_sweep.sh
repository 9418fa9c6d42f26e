#!/usr/bin/env bash
# The paper's experiment: phone ABX against the context width, over seeds, in one command.
#
#   local/context_sweep.sh --family cpc                     # mini: cpc.csa<W>-mini, 7 widths x 3 seeds
#   local/context_sweep.sh --family bestrq --seeds "0 1 2 3 4" --parallel 2
#   local/context_sweep.sh --family cpc --evals "abx pr baseline"  # also PER and WER per width
#   local/context_sweep.sh --family cpc --corpus librispeech --libri-dir /corpora/LibriSpeech \
#       --seeds "0 1 2 3 4"                                  # the paper's cpc.csa<W>, 200 epochs
#
# The data first (run.sh stages 0-1, once per width); then for every width W and seed S:
# ./run.sh --model <family>.csa<W><suffix> --seed S, stages 2-3
# (exp/<family>.csa<W><suffix>.seed<S>/version_0), then its --evals: abx (local/zrc_run.sh: the
# mini corpus's dev and test parts, or --abx-set abxLS), pr (local/superb_run.sh --task pr:
# the phone-recognition probe's PER) and baseline (local/baseline_run.sh: the frozen-feature
# CTC baseline's WER, the paper's ASR experiment). --parallel N runs N (width, seed)
# pairs at once; each run submits its jobs through cmd.sh's launchers (on Slurm: one training
# job per width and seed). Finished runs and scores are skipped; an interrupted run resumes.
# Then scpc-sweep writes exp/sweeps/<name>/: runs.csv, table.txt (mean +- sd over seeds per
# width and measure, one-way ANOVA over widths) and abx_vs_width.png (with a PER/WER panel when
# scored), and prints the table.
# A run's own output goes to <its exp dir>/log/sweep.log.
set -euo pipefail
cd "$(dirname "$0")/.."

family=cpc                     # conf/model.<family>.csa<W><suffix>.yaml: cpc or bestrq
widths="2 4 8 16 32 64 128"    # context widths (frames)
seeds="0 1 2"                  # training seeds (run.sh --seed)
corpus=mini                    # mini or librispeech (run.sh --corpus)
libri_dir=                     # librispeech: an existing LibriSpeech directory (run.sh)
suffix=default                 # config name suffix: default is -mini on the mini corpus, else none
abx_set=                       # zrc_run.sh --set (default: mini on the mini corpus, else abxLS)
abx_parts=                     # zrc_run.sh --parts (default: its own)
evals=abx                      # scores of every run: any of abx, pr, baseline
name=                          # exp/sweeps/<name> (default: <family>.csa<suffix>.<corpus>)
parallel=1                     # (width, seed) runs at once
nj=2                           # parallel jobs inside a run
ngpu=0                         # GPUs per training job (run.sh --ngpu)
datadir=data
expdir=exp
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }
case $corpus in
  mini) [ "$suffix" != default ] || suffix=-mini; abx_set=${abx_set:-mini} ;;
  librispeech) [ "$suffix" != default ] || suffix=; abx_set=${abx_set:-abxLS} ;;
  *) echo "$0: --corpus must be mini or librispeech, not '$corpus'" >&2; exit 1 ;;
esac
name=${name:-$family.csa$suffix.$corpus}
for w in $widths; do
  m=$family.csa$w$suffix
  [ -f conf/model.$m.yaml ] || [ -f $expdir/$m.seed${seeds%% *}/version_0/model.yaml ] ||
    { echo "$0: no conf/model.$m.yaml (widths of $family: $(cd conf && printf '%s\n' model.$family.csa*$suffix.yaml | sed "s/^model\.$family\.csa\([0-9]*\).*/\1/" | sort -n | tr '\n' ' '))" >&2; exit 1; }
done
for s in $seeds; do
  [[ $s =~ ^[0-9]+$ ]] || { echo "$0: seeds must be non-negative integers, not '$s'" >&2; exit 1; }
done
for e in $evals; do
  case $e in abx|pr|baseline) ;; *) echo "$0: unknown evaluation '$e' (abx, pr, baseline)" >&2; exit 1 ;; esac
done

echo "$0: $family, widths $widths, seeds $seeds, $corpus, $evals; $parallel at a time" >&2
# data (and features, for configs that precompute them) once, before runs share them
mkdir -p $expdir/sweeps/$name/log
for w in $widths; do
  ./run.sh --corpus $corpus --libri-dir "$libri_dir" --model $family.csa$w$suffix \
    --seed ${seeds%% *} --stop-stage 1 --nj $nj --datadir $datadir --expdir $expdir \
    >> $expdir/sweeps/$name/log/data.log 2>&1 ||
    { echo "$0: data preparation failed; see $expdir/sweeps/$name/log/data.log" >&2; exit 1; }
done
commands=$(
for w in $widths; do
  for s in $seeds; do
    printf '%q ' local/context_sweep_run.sh --width $w --seed $s --model $family.csa$w$suffix \
      --corpus $corpus --libri-dir "$libri_dir" --abx-set $abx_set --abx-parts "$abx_parts" \
      --evals "$evals" \
      --nj $nj --ngpu $ngpu --datadir $datadir --expdir $expdir; echo
  done
done)
# each run prints "abx WIDTH:SEED:PART:CSV" per part and "result WIDTH:SEED:KIND:JSON" per eval
lines=$(utils/run_parallel.sh $parallel <<< "$commands")
args=()
while read -r kind entry; do
  case $kind in
    abx) args+=("$entry") ;;
    result) args+=(--result "$entry") ;;
  esac
done <<< "$lines"
. ./path.sh
scpc-sweep --out-dir $expdir/sweeps/$name "${args[@]}"
