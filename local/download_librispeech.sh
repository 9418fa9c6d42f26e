#!/usr/bin/env bash
# Downloads LibriSpeech parts and resources from openslr, resumably, checking MD5 sums, and
# extracts them into <dir>/LibriSpeech/<part>. Re-running skips what is complete and resumes
# a partial download. Archives are deleted after extraction unless --keep-archives true.
#
# Usage: local/download_librispeech.sh [options] <dir> <name>...
#   names: dev-clean dev-other test-clean test-other train-clean-100 train-clean-360
#          train-other-500 (audio), librispeech-vocab.txt librispeech-lexicon.txt
#          librispeech-lm-norm.txt.gz 3-gram.arpa.gz ... (LM resources),
#          cpc-split (the CPC paper's train/validation lists of train-clean-100)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mirror=https://www.openslr.org            # or https://us.openslr.org, https://openslr.elda.org
manifest=$root/local/resources/librispeech.txt  # resources with their checksums
keep_archives=false                       # keep the .tar.gz files after extracting
retry_wait=5                              # seconds before retrying a broken transfer
help_message="Usage: $0 [options] <dir> <name>...  (see the header of $0)"
. "$root/utils/parse_options.sh"
[ $# -ge 2 ] || { echo "$help_message" >&2; exit 1; }
command -v scpc-download >/dev/null 2>&1 || . "$root/path.sh"

dir=$1; shift
names=()
for name in "$@"; do
  case $name in
    cpc-split) names+=(train_clean_100_train_subset.txt train_clean_100_test_subset.txt) ;;
    *.*) names+=("$name") ;;
    *) names+=("$name.tar.gz") ;;
  esac
done
keep=(); $keep_archives && keep=(--keep-archive)
scpc-download --manifest "$manifest" --mirror "$mirror" --retry-wait "$retry_wait" "${keep[@]}" \
  "$dir" "${names[@]}"
