#!/usr/bin/env bash
# Regenerates the hashed locks the image installs from:
#   deploy/requirements.lock        <- deploy/requirements.in        (runtime dependencies)
#   deploy/build-requirements.lock  <- deploy/build-requirements.in  (setuptools, to build the wheel)
#
#   deploy/lock.sh              # keep the current pins where the inputs still allow them
#   deploy/lock.sh --upgrade    # move every pin to the newest allowed release
#
# Run it with the Python the image uses (3.11) on Linux, after changing pyproject.toml's
# [project].dependencies and copying them into deploy/requirements.in. pip-tools runs from a
# throwaway virtualenv, with the user's and the machine's pip configuration switched off so that
# a local wheel cache or a private index cannot leak into the hashes: the locks name only
# files published on PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-python3.11}"
index="${LOCK_INDEX_URL:-https://pypi.org/simple}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "error: $python is not Python 3.11 (set PYTHON=...): the image runs 3.11" >&2
    exit 1
fi

venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT

export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --index-url "$index" "pip-tools>=7.4,<8"

cd "$root"
for name in requirements build-requirements; do
    "$venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
        --no-emit-index-url --index-url "$index" "$@" \
        --output-file "deploy/$name.lock" "deploy/$name.in"
done
echo "wrote deploy/requirements.lock and deploy/build-requirements.lock"
