# shellcheck shell=bash
# Sourced by scripts after they declare their options as shell variables with defaults:
#
#   nj=4            # parallel jobs
#   corpus=mini     # mini or librispeech
#   . utils/parse_options.sh
#
# It turns "--nj 8" or "--nj=8" into nj=8 for any variable declared before it, stops at the
# first argument that is not an option (or at "--"), and leaves the rest in "$@".
# "--help" prints $help_message (if set) and every option with its default and comment.
# "--config FILE" sources FILE (lines like nj=8) before later options are applied.
# An option whose default is true or false only takes true or false; one whose default is an
# integer only takes an integer (or nothing: "--pca-dims ''").

__po_script=${0}
__po_help() {
  [ -n "${help_message:-}" ] && printf '%s\n\n' "$help_message" || echo "Usage: $__po_script [options] <args>"
  echo "Options (default in brackets):"
  local line name comment
  while IFS= read -r line; do
    case $line in *parse_options.sh*) break ;; esac
    [[ $line =~ ^([a-z_][a-z0-9_]*)= ]] || continue
    name=${BASH_REMATCH[1]}
    comment=""
    [[ $line =~ [[:space:]]#[[:space:]]*(.*)$ ]] && comment=${BASH_REMATCH[1]}
    printf '  --%-22s [%s] %s\n' "${name//_/-}" "${!name}" "$comment"
  done < "$__po_script"
  echo "  --config FILE              source FILE of name=value lines"
}

while [ $# -gt 0 ]; do
  case $1 in
    --help|-h) __po_help; exit 0 ;;
    --) shift; break ;;
    --config) [ $# -ge 2 ] || { echo "$__po_script: --config needs a file" >&2; exit 1; }
      [ -f "$2" ] || { echo "$__po_script: --config $2: no such file" >&2; exit 1; }
      # shellcheck source=/dev/null  # the user's option file
      . "$2"; shift 2; continue ;;
    --*=*) __po_name=${1%%=*}; __po_value=${1#*=}; __po_shift=1 ;;
    --*) [ $# -ge 2 ] || { echo "$__po_script: option $1 needs a value" >&2; exit 1; }
      __po_name=$1; __po_value=$2; __po_shift=2 ;;
    *) break ;;
  esac
  __po_var=${__po_name#--}
  __po_var=${__po_var//-/_}
  if [[ ! $__po_var =~ ^[a-z_][a-z0-9_]*$ ]] || [ -z "${!__po_var+set}" ]; then
    echo "$__po_script: unknown option $__po_name (see --help)" >&2; exit 1
  fi
  case ${!__po_var} in
    true|false) case $__po_value in true|false) ;;
      *) echo "$__po_script: $__po_name takes true or false, got '$__po_value'" >&2; exit 1 ;;
      esac ;;
  esac
  # an option whose default is an integer (--stage, --nj, --version, ...) takes integers only
  if [[ ${!__po_var} =~ ^-?[0-9]+$ ]] && [[ ! $__po_value =~ ^-?[0-9]*$ ]]; then
    echo "$__po_script: $__po_name takes an integer, got '$__po_value'" >&2; exit 1
  fi
  printf -v "$__po_var" '%s' "$__po_value"
  shift "$__po_shift"
done
unset -f __po_help
unset __po_script __po_name __po_value __po_var __po_shift
true
