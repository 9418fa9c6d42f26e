#!/usr/bin/env bash
# Downloads Speech Commands v0.01 and its official test set (SUPERB's KS data) into
# <dir>/speech_commands_v0.01 and <dir>/speech_commands_test_set_v0.01. Resumable.
#
# Usage: local/download_speech_commands.sh [options] <dir>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mirror=http://download.tensorflow.org/data     # where the two archives live
manifest=$root/local/resources/speech_commands.txt
keep_archives=false                            # keep the .tar.gz files after extracting
retry_wait=5                                   # seconds before retrying a broken transfer
help_message="Usage: $0 [options] <dir>"
. "$root/utils/parse_options.sh"
[ $# -eq 1 ] || { echo "$help_message" >&2; exit 1; }
command -v scpc-download >/dev/null 2>&1 || . "$root/path.sh"

keep=(); $keep_archives && keep=(--keep-archive)
scpc-download --manifest "$manifest" --mirror "$mirror" --retry-wait "$retry_wait" "${keep[@]}" \
  "$1" speech_commands_v0.01.tar.gz speech_commands_test_set_v0.01.tar.gz
