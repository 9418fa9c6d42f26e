#!/usr/bin/env bash
# Downloads VoxCeleb1 (wav, about 40 GB) and its metadata into <dir>: wav/, iden_split.txt,
# veri_test.txt, veri_test2.txt, vox1_meta.csv. Resumable; SHA-256 checked.
#
# VoxCeleb1 is not public: request access on the VoxCeleb web site, then pass the user name
# and password you receive (or set SCPC_DOWNLOAD_USER / SCPC_DOWNLOAD_PASSWORD), and --mirror
# if you were given another download location.
#
# Usage: local/download_voxceleb1.sh --user USER --password PASS [options] <dir>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mirror=https://thor.robots.ox.ac.uk/~vgg/data/voxceleb  # base of vox1a/vox1_*
manifest=$root/local/resources/voxceleb1.txt
user=${SCPC_DOWNLOAD_USER:-}          # VoxCeleb download user name
password=${SCPC_DOWNLOAD_PASSWORD:-}  # VoxCeleb download password
keep_archives=false                   # keep the zip files after extracting
retry_wait=5                          # seconds before retrying a broken transfer
help_message="Usage: $0 --user USER --password PASS [options] <dir>"
. "$root/utils/parse_options.sh"
[ $# -eq 1 ] || { echo "$help_message" >&2; exit 1; }
command -v scpc-download >/dev/null 2>&1 || . "$root/path.sh"
dir=$1
if [ -z "$user" ]; then
  echo "$0: VoxCeleb1 needs credentials: request access on the VoxCeleb site, then pass --user and --password" >&2
  exit 1
fi

dl() { scpc-download --manifest "$manifest" --mirror "$mirror" --retry-wait "$retry_wait" "$@"; }
dl "$dir" iden_split.txt veri_test.txt veri_test2.txt vox1_meta.csv
if [ ! -f "$dir/.vox1_dev_wav.zip.complete" ]; then
  dl --user "$user" --password "$password" --keep-archive "$dir" \
    vox1_dev_wav_partaa vox1_dev_wav_partab vox1_dev_wav_partac vox1_dev_wav_partad
  # the dev archive comes in four pieces of one zip file
  cat "$dir"/vox1_dev_wav_parta[a-d] > "$dir/.vox1_dev_wav.zip.tmp"
  mv "$dir/.vox1_dev_wav.zip.tmp" "$dir/vox1_dev_wav.zip"
  python -c 'import sys; from pathlib import Path; from scpc.data.download import extract; extract(Path(sys.argv[1]), Path(sys.argv[2]))' \
    "$dir/vox1_dev_wav.zip" "$dir"
  touch "$dir/.vox1_dev_wav.zip.complete"
  $keep_archives || rm -f "$dir"/vox1_dev_wav_parta[a-d] "$dir/vox1_dev_wav.zip"
fi
keep=(); $keep_archives && keep=(--keep-archive)
dl --user "$user" --password "$password" "${keep[@]}" "$dir" vox1_test_wav.zip
echo "$0: VoxCeleb1 is in $dir"
