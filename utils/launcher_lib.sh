# shellcheck shell=bash
# Sourced (never run) by the job launchers utils/run_local.sh, utils/slurm.sh and utils/queue.sh,
# and by the job scripts that slurm.sh and queue.sh submit: what they share, so that a command
# means the same thing whichever launcher runs it.
#
# The launchers' interface is Kaldi's run.pl / slurm.pl / queue.pl:
#   <launcher> [options] [JOB=1:N] <log-file> <command> [<arg>...]
# Every literal "JOB" (or whatever name comes before "=") in the log file and in the command's
# arguments is replaced by the job number (also inside words). Each job's output goes to its
# log, between a header (the command, the start time) and a footer (the elapsed time, the exit
# code, the end time). The launcher waits for every job and exits 1 if any failed. One job
# started from a terminal also shows its log there as it grows (SCPC_SHOW_LOG=0: not).
#
# Options every launcher takes (a scheduler maps them onto its own through its config file):
#   --num-threads N     CPUs per process; exported as OMP_NUM_THREADS and MKL_NUM_THREADS
#   --mem M, --time T, --gpu G   memory, wall-clock limit and GPUs per node (ignored locally)
#   --max-jobs-run N    at most N jobs of the array at once
#   --nodes M, --procs-per-node P   one distributed (DDP) job of M x P processes: started by
#                       srun under Slurm (each process finds its rank in SLURM_* variables),
#                       by torchrun --standalone on one machine; MASTER_ADDR and MASTER_PORT
#                       are set for them
#   --config F          the scheduler's option mapping (conf/slurm.conf, conf/queue.conf)
#   any other --name VALUE: looked up in the scheduler's config (ignored locally)
#
# Quoting: the command runs as an argument vector, never through eval, so arguments keep their
# spaces, quotes and $ signs ("ark:gunzip -c a.JOB.gz|" stays one argument). As with run.pl, an
# argument that is exactly a shell operator (| || && ; < > >> 2> 2>> &> 2>&1 |&, escaped or
# quoted on the caller's command line) is a real operator: the command then runs through
# bash -c (with pipefail) with every other argument quoted (printf %q).
#
# Signals: TERM and USR1 reach the command (every process of a distributed job). Under a
# scheduler, a job that gets USR1 (the warning before its time limit) and then does not end
# with code 0 is requeued (Slurm: scontrol requeue; Grid Engine: exit 99): scpc-train saves
# last.ckpt and exits 138 on USR1, and so starts again where it stopped. A job ended by TERM
# (cancellation, preemption) leaves no exit code: the launcher waits while the scheduler keeps
# it queued (a preemption with requeue) and counts it failed once it is gone.

declare -A launcher_opts=()   # options given, keyed by name with "_" for "-" (mem, gpu, ...)
launcher_jobvar='' launcher_first=1 launcher_last=1 launcher_log='' launcher_shell=false
launcher_cmd=()
launcher_scheduler=        # set by the job scripts of slurm.sh (slurm) and queue.sh (sge)

# shellcheck disable=SC2154  # launcher_prog: set by the launcher that sources this file
launcher_die() { echo "$launcher_prog: $*" >&2; exit 1; }

# launcher_parse ARGS...: the options, the job range, the log file and the command
launcher_parse() {
  local name value
  while [ $# -gt 0 ]; do
    case $1 in
      -V) shift; continue ;;  # queue.pl's "export the environment": always done
      --*=*) name=${1%%=*}; value=${1#*=}; shift ;;
      --*) [ $# -ge 2 ] || launcher_die "option $1 needs a value"
           name=$1; value=$2; shift 2 ;;
      *) break ;;
    esac
    name=${name#--}
    launcher_opts[${name//-/_}]=$value
  done
  local n
  for n in num_threads max_jobs_run gpu nodes procs_per_node; do
    value=${launcher_opts[$n]-}
    [ -z "$value" ] || [[ $value =~ ^[0-9]+$ ]] || launcher_die "bad --${n//_/-} '$value'"
  done
  for n in num_threads nodes procs_per_node; do
    [ "${launcher_opts[$n]-1}" != 0 ] || launcher_die "--${n//_/-} must be at least 1"
  done

  if [ $# -gt 0 ] && [[ $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+)(:([0-9]+))?$ ]]; then
    launcher_jobvar=${BASH_REMATCH[1]}
    launcher_first=${BASH_REMATCH[2]}
    launcher_last=${BASH_REMATCH[4]:-$launcher_first}
    shift
    [ "$launcher_first" -le "$launcher_last" ] ||
      launcher_die "empty job range $launcher_jobvar=$launcher_first:$launcher_last"
  elif [ $# -gt 0 ] && [[ $1 == ?*=*:* ]]; then
    launcher_die "bad job range '$1' (expected like JOB=1:4)"
  fi
  if [ $# -lt 2 ]; then
    echo "Usage: $launcher_prog [options] [JOB=1:N] <log-file> <command> [<arg>...]" >&2; exit 1
  fi
  launcher_log=$1; shift
  launcher_cmd=("$@")
  if [ -n "$launcher_jobvar" ] && [ "$launcher_first" -ne "$launcher_last" ] &&
     [[ $launcher_log != *"$launcher_jobvar"* ]]; then
    launcher_die "the log file $launcher_log must contain $launcher_jobvar when running several jobs"
  fi
  local a
  for a in "${launcher_cmd[@]}"; do launcher_is_operator "$a" && launcher_shell=true; done
  return 0
}

launcher_is_operator() {
  case $1 in '|'|'||'|'&&'|';'|'<'|'>'|'>>'|'2>'|'2>>'|'&>'|'2>&1'|'|&') return 0 ;; esac
  return 1
}

# launcher_subst N STRING: the string with every job variable replaced by N
launcher_subst() {
  if [ -n "$launcher_jobvar" ]; then printf '%s' "${2//"$launcher_jobvar"/$1}"; else printf '%s' "$2"; fi
}

launcher_procs() {  # processes of one job
  echo $(( ${launcher_opts[nodes]:-1} * ${launcher_opts[procs_per_node]:-1} ))
}

# launcher_map_options CONFIG: the scheduler's options for the options given, into
# launcher_sched_args, by Kaldi's rules. The config has lines
#   command sbatch --export=ALL       the submission command and its fixed options
#   option NAME=VALUE OPTS...          OPTS when --NAME is exactly VALUE (may be empty)
#   option NAME=* OPTS...              OPTS with $0 replaced by the value, for any other value
#   default NAME=VALUE                 the value of --NAME when it is not given
# An option given with no line for it is an error, except max_jobs_run, nodes and
# procs_per_node, which the launchers handle themselves unless the config maps them.
launcher_sched_command=() launcher_sched_args=()
launcher_map_options() {
  local conf=$1 line kind rest name value pattern opts
  [ -f "$conf" ] || launcher_die "no config file $conf"
  declare -A given=() exact=() any=()
  for name in "${!launcher_opts[@]}"; do
    [ "$name" = config ] || given[$name]=${launcher_opts[$name]}
  done
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}
    read -r kind rest <<< "$line" || true
    case $kind in
      '') continue ;;
      command) read -r -a launcher_sched_command <<< "$rest" ;;
      default)
        [[ $rest =~ ^([a-z_]+)=([^[:space:]]*)$ ]] || launcher_die "$conf: bad line '$line'"
        name=${BASH_REMATCH[1]}
        [ -n "${given[$name]+x}" ] || given[$name]=${BASH_REMATCH[2]} ;;
      option)
        [[ $rest =~ ^([a-z_]+)=([^[:space:]]*)[[:space:]]*(.*)$ ]] || launcher_die "$conf: bad line '$line'"
        name=${BASH_REMATCH[1]} pattern=${BASH_REMATCH[2]} opts=${BASH_REMATCH[3]}
        if [ "$pattern" = '*' ]; then any[$name]=$opts; else exact[$name=$pattern]=$opts; fi ;;
      *) launcher_die "$conf: unknown line '$line' (command, option or default)" ;;
    esac
  done < "$conf"
  [ ${#launcher_sched_command[@]} -gt 0 ] || launcher_die "$conf: no 'command' line"
  launcher_sched_args=()
  local mapped words
  for name in $(printf '%s\n' "${!given[@]}" | sort); do
    value=${given[$name]}
    if [ -n "${exact[$name=$value]+x}" ]; then
      mapped=${exact[$name=$value]}
    elif [ -n "${any[$name]+x}" ]; then
      mapped=${any[$name]//\$0/$value}
    else
      case $name in max_jobs_run|nodes|procs_per_node) continue ;; esac
      launcher_die "$conf has no line for --${name//_/-} $value"
    fi
    read -r -a words <<< "$mapped"
    launcher_sched_args+=("${words[@]}")
  done
}

# launcher_run_job N STATUS_DIR: job N, its output and exit code into its log, the exit code
# into STATUS_DIR/N (not when the job is requeued or killed by its scheduler); the command's
# stdin is file descriptor 3
launcher_run_job() {
  local n=$1 status_dir=$2 log a line rc start child got=
  log=$(launcher_subst "$n" "$launcher_log")
  local args=()
  for a in "${launcher_cmd[@]}"; do args+=("$(launcher_subst "$n" "$a")"); done
  if $launcher_shell; then
    line=
    for a in "${args[@]}"; do
      if launcher_is_operator "$a"; then line+="$a "; else line+="$(printf '%q' "$a") "; fi
    done
    args=(bash -c "set -o pipefail; $line")
  else
    line=$(printf '%q ' "${args[@]}")
  fi
  local threads=${launcher_opts[num_threads]-}
  [ -z "$threads" ] || export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
  local procs torchrun=false; procs=$(launcher_procs)
  if [ "$procs" -gt 1 ]; then
    if [ "$launcher_scheduler" = slurm ]; then
      MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
      # each job of an array has its own SLURM_JOB_ID; scpc.train.distributed.slurm_port's rule
      MASTER_PORT=$(( 20000 + SLURM_JOB_ID % 20000 ))
      export MASTER_ADDR MASTER_PORT
      args=(srun --kill-on-bad-exit=1 "${args[@]}")
    else
      args=(torchrun --standalone --nnodes 1 --nproc-per-node "$procs" --no-python "${args[@]}")
      torchrun=true
    fi
  fi
  mkdir -p "$(dirname "$log")" || { echo 1 > "$status_dir/$n"; return; }
  if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] || [ "${RESTARTED:-0}" = 1 ]; then
    echo "# Restarted at $(date) (requeued)" >> "$log"  # keeps the earlier attempts' output
  else
    { echo "# ${line% }"; echo "# Started at $(date)"; } > "$log" || { echo 1 > "$status_dir/$n"; return; }
  fi
  start=$(date +%s)
  # in the background so that a signal to this job reaches the command; stdin stays the caller's
  "${args[@]}" <&3 >> "$log" 2>&1 &
  child=$!
  trap 'got=TERM; kill -TERM "$child" 2>/dev/null' TERM
  # torchrun passes TERM on to its workers but dies of USR1: that goes to the workers directly
  if $torchrun; then
    trap 'got=USR1; pkill -USR1 -P "$child"' USR1
  else
    trap 'got=USR1; kill -USR1 "$child" 2>/dev/null' USR1
  fi
  wait "$child"
  rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done  # woken by a trap
  trap - TERM USR1
  {
    echo "# Accounting: time=$(( $(date +%s) - start )) threads=${threads:-1}"
    echo "# Ended (code $rc) at $(date)"
  } >> "$log"
  # the scheduler's warning (SIGUSR1) came and the command did not finish: run it again
  if [ -n "$launcher_scheduler" ] && [ "$got" = USR1 ] && [ "$rc" != 0 ]; then
    echo "# Requeued at $(date): stopped by SIGUSR1" >> "$log"
    case $launcher_scheduler in
      slurm) local id=$SLURM_JOB_ID
             [ -z "${SLURM_ARRAY_JOB_ID:-}" ] || id=${SLURM_ARRAY_JOB_ID}_$SLURM_ARRAY_TASK_ID
             scontrol requeue "$id" >> "$log" 2>&1 && exit 0
             echo "# scontrol requeue $id failed: the job ends here" >> "$log" ;;
      sge) exit 99 ;;  # Grid Engine reschedules a job that exits with 99
    esac
  fi
  # a scheduler's TERM (cancel, preemption) leaves no status: the launcher asks the queue
  [ -n "$launcher_scheduler" ] && [ "$got" = TERM ] && return
  echo "$rc" > "$status_dir/$n"
}

# launcher_wait STATUS_DIR IN_QUEUE WHAT OUT_PATTERN: polls until every job has an exit code in
# STATUS_DIR or the scheduler has forgotten the job (IN_QUEUE returns 0 while it is queued or
# running, 1 once it is not, 2 when the scheduler cannot tell); names the jobs that ended
# without an exit code (OUT_PATTERN: the scheduler's output file, %d for the job number).
# A requeued job is still in the queue, so it is waited for. SCPC_POLL_MAX caps the interval.
launcher_wait() {
  local status_dir=$1 in_queue=$2 what=$3 out=$4 n rc
  local num=$(( launcher_last - launcher_first + 1 )) interval=0.5 gone=0
  while [ "$(find "$status_dir" -type f | wc -l)" -lt "$num" ]; do
    "$in_queue"; rc=$?
    case $rc in 0) gone=0 ;; 1) gone=$(( gone + 1 )) ;; esac
    # out of the queue: a few more looks for exit codes that a shared file system delays
    [ "$gone" -lt 3 ] || break
    sleep "$interval" & wait $!
    interval=$(awk -v i="$interval" -v m="${SCPC_POLL_MAX:-30}" \
      'BEGIN { i *= 1.5; print (i > m ? m : i) }')
  done
  for (( n = launcher_first; n <= launcher_last; n++ )); do
    # shellcheck disable=SC2059  # $out is the per-job log's printf pattern
    [ -f "$status_dir/$n" ] || echo "$launcher_prog: job $n of $what ended without an exit code" \
      "(cancelled, preempted or killed by the scheduler; see $(printf "$out" "$n"))" >&2
  done
}

# launcher_show_log PID: when one job was started from a terminal, shows its log there as it
# grows (as if the job ran in the foreground), until PID ends or launcher_end_log; SCPC_SHOW_LOG=0
# turns this off
launcher_tail_pid='' launcher_tail_follows=''
launcher_show_log() {
  [ "$launcher_first" -eq "$launcher_last" ] && [ -t 1 ] && [ "${SCPC_SHOW_LOG:-1}" = 1 ] || return 0
  launcher_tail_follows=$1
  tail -n +1 -F --pid="$1" "$(launcher_subst "$launcher_first" "$launcher_log")" 2>/dev/null &
  launcher_tail_pid=$!
}
launcher_end_log() {
  [ -n "$launcher_tail_pid" ] || return 0
  if kill -0 "$launcher_tail_follows" 2>/dev/null; then
    sleep 1  # tail -F looks at the file every second: the job's last lines
    kill "$launcher_tail_pid" 2>/dev/null
  fi
  wait "$launcher_tail_pid" 2>/dev/null
}

# launcher_report_failures STATUS_DIR: exits 1 with the failure line if any job has no exit
# code or a non-zero one
launcher_report_failures() {
  local n failed=0 num shown
  for (( n = launcher_first; n <= launcher_last; n++ )); do
    [ "$(cat "$1/$n" 2>/dev/null)" = 0 ] || failed=$(( failed + 1 ))
  done
  [ "$failed" -gt 0 ] || return 0
  num=$(( launcher_last - launcher_first + 1 ))
  if [ "$num" -eq 1 ]; then
    shown=$(launcher_subst "$launcher_first" "$launcher_log")
  else
    shown=$(launcher_subst '*' "$launcher_log")
  fi
  echo "$launcher_prog: $failed / $num jobs failed, log is in $shown" >&2
  exit 1
}

# launcher_use_scheduler DEFAULT_CONFIG SCHEDULER TOOL...: maps the options through --config
# (or DEFAULT_CONFIG) and checks that the submission command and the TOOLs are installed
launcher_use_scheduler() {
  local conf=${launcher_opts[config]:-$1} scheduler=$2 tool; shift 2
  launcher_map_options "$conf"
  for tool in "${launcher_sched_command[0]}" "$@"; do
    command -v "$tool" > /dev/null || launcher_die "$tool not found: is this a $scheduler submit host?"
  done
}

# launcher_prepare_submission: for a scheduler's launcher, sets launcher_qdir (q/ beside the
# first job's log: the job script, its id, the scheduler's own output), launcher_qname (the
# log's name without the job number) and launcher_status_dir (the jobs' exit codes, emptied),
# and removes the jobs' old logs
launcher_qdir='' launcher_qname='' launcher_status_dir=''
launcher_prepare_submission() {
  local n log base
  launcher_qdir=$(dirname "$(launcher_subst "$launcher_first" "$launcher_log")")/q
  base=$(basename "$launcher_log" .log)
  [ -z "$launcher_jobvar" ] || base=${base//"$launcher_jobvar"/}
  base=${base//../.}; base=${base%.}; base=${base#.}
  launcher_qname=${base:-job}
  launcher_status_dir=$launcher_qdir/$launcher_qname.status
  mkdir -p "$launcher_qdir" || launcher_die "cannot create $launcher_qdir"
  { rm -rf "$launcher_status_dir" && mkdir -p "$launcher_status_dir"; } ||
    launcher_die "cannot create $launcher_status_dir"
  for (( n = launcher_first; n <= launcher_last; n++ )); do
    log=$(launcher_subst "$n" "$launcher_log")
    { mkdir -p "$(dirname "$log")" && rm -f "$log"; } || launcher_die "cannot write $log"
  done
}

# launcher_write_job_script FILE STATUS_DIR SCHEDULER TASK_ID_VARIABLE COMMENT: a bash script
# that runs job $TASK_ID_VARIABLE of this array through launcher_run_job
launcher_write_job_script() {
  local file=$1 status_dir=$2 scheduler=$3 task_var=$4 comment=$5 lib
  lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/launcher_lib.sh
  {
    echo '#!/usr/bin/env bash'
    echo "# $comment"
    echo "cd $(printf '%q' "$PWD")"
    echo "launcher_prog=$launcher_prog"
    echo ". $(printf '%q' "$lib")"
    # at the script's top level, these declarations make the variables global again
    declare -p launcher_opts launcher_jobvar launcher_first launcher_last launcher_log \
      launcher_shell launcher_cmd
    echo "launcher_scheduler=$scheduler"
    echo 'exec 3</dev/null'
    echo "launcher_run_job \"\${$task_var:-$launcher_first}\" $(printf '%q' "$status_dir")"
  } > "$file.tmp" || launcher_die "cannot write $file"
  mv "$file.tmp" "$file" || launcher_die "cannot write $file"
  chmod +x "$file"
}
