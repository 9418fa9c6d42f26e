#!/usr/bin/env bash
# Installs zerospeech-benchmarks (the `zrc` command, run as `scpc-zrc zrc ...`) into .venv
# from conf/zrc-requirements.txt, once. Only local/zrc_run.sh --set abxLS needs it, and it
# needs the network anyway, so it is not part of the default setup.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp=$venv/.zrc-requirements.sha256
want=$(sha256sum conf/zrc-requirements.txt | cut -d' ' -f1)
[ -f $stamp ] && [ "$(cat $stamp)" = "$want" ] && exit 0
echo "$0: installing zerospeech-benchmarks into $venv (conf/zrc-requirements.txt)"
"$venv/bin/python" -m pip install --quiet --no-deps -r conf/zrc-requirements.txt \
  2> >(grep -v "is ignored: it is neither" >&2)
echo "$want" > $stamp
