#!/usr/bin/env bash
# Runs the command lines read from stdin (one per line, shell-quoted as printf %q writes them),
# at most N at a time, stderr passing through; once all have ended, prints their standard
# outputs in the order of the lines, and exits 1 if any failed, naming them. Recipes use it to
# submit several independent runs at once through cmd.sh's launchers (each waits for its jobs).
#
# Usage: utils/run_parallel.sh <N> < commands
#   e.g. printf '%q %q\n' echo a echo b | utils/run_parallel.sh 2     # prints a, then b
set -uo pipefail
prog=run_parallel.sh
[ $# -eq 1 ] || { echo "Usage: $prog <N> < commands" >&2; exit 1; }
max=$1
[[ $max =~ ^[1-9][0-9]*$ ]] || { echo "$prog: N must be a positive integer, not '$max'" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/run_parallel.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT
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
  cat "$out/$k.out" 2>/dev/null
  if [ "$(cat "$out/$k.rc" 2>/dev/null)" != 0 ]; then
    echo "$prog: failed: ${lines[k - 1]}" >&2
    failed=$(( failed + 1 ))
  fi
done
[ "$failed" -eq 0 ] || { echo "$prog: $failed / ${#lines[@]} commands failed" >&2; exit 1; }
