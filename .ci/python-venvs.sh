#!/usr/bin/env bash
# Creates (once) the two Python environments of the numpy interop suites and
# prints the variables those suites read, as shell `export` lines:
#
#     eval "$(bash .ci/python-venvs.sh)"
#
# - numpy1: numpy 1.26 (pickles name `numpy.core.multiarray`)
# - numpy2: numpy 2.x  (pickles name `numpy._core.multiarray`)
# Both carry paho-mqtt, so either can be the Python peer of a live test.
# They live under $ECCI_VENVS (default ~/.cache/ecci-venvs) and are reused while
# their pins match. Diagnostics go to stderr; only the exports go to stdout.
set -euo pipefail

PAHO_VERSION=2.1.0
NUMPY1_VERSION=1.26.4
NUMPY2_VERSION=2.3.5
ROOT="${ECCI_VENVS:-$HOME/.cache/ecci-venvs}"

log() { echo "python-venvs: $*" >&2; }

make_venv() { # name numpy-version
    local dir="$ROOT/$1" want="numpy==$2 paho-mqtt==$PAHO_VERSION"
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.pins" 2>/dev/null)" = "$want" ]; then
        return
    fi
    log "creating $dir ($want)"
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    # shellcheck disable=SC2086 # $want is two requirement words
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2
    echo "$want" > "$dir/.pins"
}

mkdir -p "$ROOT"
make_venv numpy1 "$NUMPY1_VERSION"
make_venv numpy2 "$NUMPY2_VERSION"
for v in numpy1 numpy2; do
    log "$v: $("$ROOT/$v/bin/python" -c 'import numpy, paho.mqtt, sys; print("python", sys.version.split()[0], "numpy", numpy.__version__, "paho-mqtt", paho.mqtt.__version__)')"
done
echo "export ECCI_PYTHON_NUMPY1=$ROOT/numpy1/bin/python ECCI_PYTHON_NUMPY2=$ROOT/numpy2/bin/python"
