#!/usr/bin/env bash
# Creates .venv at the repository root with the pinned requirements, once.
# Re-running is cheap: it reinstalls only when requirements.txt or pyproject.toml changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/.venv
stamp=$venv/.requirements.sha256

want=$(cat "$root/requirements.txt" "$root/pyproject.toml" "$root/utils/setup_venv.sh" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

python=${SCPC_PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "$0: no python3 found; install Python 3.11" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  { echo "$0: $python is older than 3.10; set SCPC_PYTHON to a Python 3.11 interpreter" >&2; exit 1; }

echo "$0: setting up $venv with $("$python" --version) (first use only; about a minute)"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
# torch is pinned first in requirements.txt so pip never resolves a CUDA build.
pip_install() {  # pip, without this machine's warnings about absent local index folders
  "$venv/bin/python" -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
pip_install -r "$root/requirements.txt"
pip_install --no-deps -e "$root"
# The ZeroSpeech ABX reference scorer, to check scpc-abx against: without its dependencies,
# which would pull a torchaudio that cannot be imported here (scpc.eval wraps the import).
# It compiles a Cython extension; without a C compiler scpc-abx still works.
pip_install --no-deps zerospeech-libriabx2==0.9.8 ||
  echo "$0: warning: zerospeech-libriabx2 did not build (needs gcc); scpc-abx works without it" >&2
# s3prl, to test scpc.hub through s3prl's own S3PRLUpstream and Featurizer: without its
# dependencies (they pull torchaudio, a CUDA torch and transformers); these are all that
# s3prl.nn needs beside torch, numpy and requests (requirements.txt).
pip_install --no-deps s3prl==0.4.18 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
echo "$want" > "$stamp"
echo "$0: done"
