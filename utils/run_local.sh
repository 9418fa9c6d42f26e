#!/usr/bin/env bash
# Kaldi's run.pl for this machine: runs a command, or an array of jobs in parallel, locally.
#
# Usage: utils/run_local.sh [options] [JOB=1:N] <log-file> <command> [<arg>...]
#   e.g. utils/run_local.sh JOB=1:4 exp/log/feats.JOB.log scpc-feats --job JOB --num-jobs 4 in out
#
# Every literal "JOB" (or whatever name comes before "=") in the log file and in the command's
# arguments is replaced by the job number, as run.pl does (also inside words). Each job's stdout
# and stderr go to its log, between a header (the command, the start time) and a footer (the
# elapsed time, the exit code, the end time). The script waits for every job and exits 1 if
# any failed, saying "run_local.sh: F / N jobs failed, log is in <log>" on stderr.
#
# Options (accepted as run.pl/queue.pl/slurm.pl take them, so that cmd.sh can switch launchers):
#   --max-jobs-run N   run at most N jobs at once (default: all)
#   --num-threads N    exported to the jobs as OMP_NUM_THREADS and MKL_NUM_THREADS
#   --mem, --gpu, --time, --config, any other --name VALUE or --name=VALUE, and -V: ignored
#
# Quoting: the command runs as an argument vector, never through eval, so arguments keep their
# spaces, quotes and $ signs ("ark:gunzip -c a.JOB.gz|" stays one argument). As with run.pl,
# an argument that is exactly a shell operator (| || && ; < > >> 2> 2>> &> 2>&1 |&, escaped
# or quoted on the caller's command line) is a real operator: the command then runs through
# bash -c (with pipefail) with every other argument quoted (printf %q), so only those
# operators take effect. An interrupt or TERM stops every job; their logs say so.
set -uo pipefail

prog=run_local.sh
max_jobs_run=0
num_threads=
while [ $# -gt 0 ]; do
  case $1 in
    --max-jobs-run) max_jobs_run=${2:?"$prog: --max-jobs-run needs a value"}; shift 2 ;;
    --max-jobs-run=*) max_jobs_run=${1#*=}; shift ;;
    --num-threads) num_threads=${2:?"$prog: --num-threads needs a value"}; shift 2 ;;
    --num-threads=*) num_threads=${1#*=}; shift ;;
    --*=*) shift ;;
    --*) [ $# -ge 2 ] || { echo "$prog: option $1 needs a value" >&2; exit 1; }; shift 2 ;;
    -V) shift ;;
    *) break ;;
  esac
done
[[ $max_jobs_run =~ ^[0-9]+$ ]] || { echo "$prog: bad --max-jobs-run '$max_jobs_run'" >&2; exit 1; }
if [ -n "$num_threads" ]; then
  [[ $num_threads =~ ^[1-9][0-9]*$ ]] || { echo "$prog: bad --num-threads '$num_threads'" >&2; exit 1; }
  export OMP_NUM_THREADS=$num_threads MKL_NUM_THREADS=$num_threads
fi

jobvar= first=1 last=1
if [ $# -gt 0 ] && [[ $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+)(:([0-9]+))?$ ]]; then
  jobvar=${BASH_REMATCH[1]}
  first=${BASH_REMATCH[2]}
  last=${BASH_REMATCH[4]:-$first}
  shift
  if [ "$first" -gt "$last" ]; then
    echo "$prog: empty job range $jobvar=$first:$last" >&2; exit 1
  fi
elif [ $# -gt 0 ] && [[ $1 == ?*=*:* ]]; then
  echo "$prog: bad job range '$1' (expected like JOB=1:4)" >&2; exit 1
fi
if [ $# -lt 2 ]; then
  echo "Usage: $prog [options] [JOB=1:N] <log-file> <command> [<arg>...]" >&2; exit 1
fi
logfile=$1; shift
cmd=("$@")
if [ -n "$jobvar" ] && [ "$first" -ne "$last" ] && [[ $logfile != *"$jobvar"* ]]; then
  echo "$prog: the log file $logfile must contain $jobvar when running several jobs" >&2; exit 1
fi

is_operator() {
  case $1 in '|'|'||'|'&&'|';'|'<'|'>'|'>>'|'2>'|'2>>'|'&>'|'2>&1'|'|&') return 0 ;; esac
  return 1
}
use_shell=false
for a in "${cmd[@]}"; do is_operator "$a" && use_shell=true; done

subst() {  # subst JOB_NUMBER STRING: the string with every $jobvar replaced
  if [ -n "$jobvar" ]; then printf '%s' "${2//"$jobvar"/$1}"; else printf '%s' "$2"; fi
}

exec 3<&0
status_dir=$(mktemp -d "${TMPDIR:-/tmp}/run_local.XXXXXX")
trap 'rm -rf "$status_dir"' EXIT
trap 'kill $(jobs -rp) 2>/dev/null; wait; echo "$prog: interrupted, logs in $logfile" >&2; exit 130' INT TERM

run_job() {  # run_job N: one job, its output and rc into its log, its rc into the status dir
  local n=$1 log a line rc start
  log=$(subst "$n" "$logfile")
  local args=()
  for a in "${cmd[@]}"; do args+=("$(subst "$n" "$a")"); done
  if $use_shell; then
    line=
    for a in "${args[@]}"; do
      if is_operator "$a"; then line+="$a "; else line+="$(printf '%q' "$a") "; fi
    done
    args=(bash -c "set -o pipefail; $line")
  else
    line=$(printf '%q ' "${args[@]}")
  fi
  mkdir -p "$(dirname "$log")" || { echo 1 > "$status_dir/$n"; return; }
  { echo "# ${line% }"; echo "# Started at $(date)"; } > "$log" || { echo 1 > "$status_dir/$n"; return; }
  start=$(date +%s)
  # in the background so that a TERM to this job reaches the command; stdin stays the caller's
  "${args[@]}" <&3 >> "$log" 2>&1 &
  local child=$!
  trap 'kill -TERM "$child" 2>/dev/null' TERM
  wait "$child"
  rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done  # woken by the trap
  {
    echo "# Accounting: time=$(( $(date +%s) - start )) threads=${num_threads:-1}"
    echo "# Ended (code $rc) at $(date)"
  } >> "$log"
  echo "$rc" > "$status_dir/$n"
}

for (( n = first; n <= last; n++ )); do
  if [ "$max_jobs_run" -gt 0 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$max_jobs_run" ]; do wait -n; done
  fi
  run_job "$n" &
done
wait

failed=0
for (( n = first; n <= last; n++ )); do
  rc=$(cat "$status_dir/$n" 2>/dev/null || echo 1)
  [ "$rc" = 0 ] || failed=$(( failed + 1 ))
done
if [ "$failed" -gt 0 ]; then
  num=$(( last - first + 1 ))
  if [ "$num" -eq 1 ]; then
    shown=$(subst "$first" "$logfile")
  else
    shown=$(subst '*' "$logfile")
  fi
  echo "$prog: $failed / $num jobs failed, log is in $shown" >&2
  exit 1
fi
exit 0
