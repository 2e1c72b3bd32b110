#!/usr/bin/env bash
# Installs what the Python interop peer (ecci-client/tests/python/peer.py) needs:
# paho-mqtt, pinned. Idempotent; use before running the tests with ECCI_TEST_BROKER set.
set -euo pipefail

PAHO_VERSION=2.1.0

if python3 -c "import paho.mqtt, sys; sys.exit(paho.mqtt.__version__ != '$PAHO_VERSION')" 2>/dev/null; then
  echo "paho-mqtt $PAHO_VERSION already installed" >&2
  exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check "paho-mqtt==$PAHO_VERSION" >&2 \
  || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "paho-mqtt==$PAHO_VERSION" >&2
python3 -c "import paho.mqtt; print('paho-mqtt', paho.mqtt.__version__)" >&2
