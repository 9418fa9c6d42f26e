#!/usr/bin/env bash
# Runs the command lines read from stdin (one per line, shell-quoted as printf %q writes them),
# at most N at a time; the stdout of line K (1-based) goes to <out-dir>/K.out, stderr passes
# through. Exits 1 after all have ended if any failed, naming them. Recipes use it to submit
# several independent runs at once through cmd.sh's launchers (each waits for its own jobs).
#
# Usage: utils/run_parallel.sh <N> <out-dir> < commands
#   e.g. printf '%q %q\n' echo a echo b | utils/run_parallel.sh 2 /tmp/out   # /tmp/out/{1,2}.out
set -uo pipefail
prog=run_parallel.sh
[ $# -eq 2 ] || { echo "Usage: $prog <N> <out-dir> < commands" >&2; exit 1; }
max=$1 out=$2
[[ $max =~ ^[1-9][0-9]*$ ]] || { echo "$prog: N must be a positive integer, not '$max'" >&2; exit 1; }
mkdir -p "$out" || exit 1
trap 'kill $(jobs -rp) 2>/dev/null; wait; echo "$prog: interrupted" >&2; exit 130' INT TERM

lines=()
while IFS= read -r line || [ -n "$line" ]; do [ -z "$line" ] || lines+=("$line"); done
for (( k = 1; k <= ${#lines[@]}; k++ )); do
  while [ "$(jobs -rp | wc -l)" -ge "$max" ]; do wait -n; done
  (
    eval "set -- ${lines[k - 1]}"  # the line's words, as the caller quoted them
    "$@" > "$out/$k.out"
    echo $? > "$out/$k.rc"
  ) < /dev/null &
done
wait
failed=0
for (( k = 1; k <= ${#lines[@]}; k++ )); do
  if [ "$(cat "$out/$k.rc" 2>/dev/null)" != 0 ]; then
    echo "$prog: failed: ${lines[k - 1]}" >&2
    failed=$(( failed + 1 ))
  fi
done
[ "$failed" -eq 0 ] || { echo "$prog: $failed / ${#lines[@]} commands failed" >&2; exit 1; }
