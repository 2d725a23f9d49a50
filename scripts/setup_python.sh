#!/usr/bin/env bash
# Creates (or reuses) the Python environment for kao's tools and comparison tests and prints
# its python. The environment lives outside the checkout so that clean clones share it:
# KAO_VENV, default ~/.cache/kao/venv. Quiet when everything is already installed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${KAO_VENV:-$HOME/.cache/kao/venv}"
requirements="$here/tools/requirements.txt"
stamp="$venv/.kao-requirements"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
if ! cmp -s "$requirements" "$stamp"; then
    echo "setup_python: installing tools/requirements.txt into $venv (first time: a few minutes)" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"
