#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver if needed (idempotent) and prints the
# variables the web view's browser test reads; use as: eval "$(bash .ci/install-chromium.sh)"
set -euo pipefail

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "installing chromium and chromium-driver" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
fi
chromium=$(command -v chromium)
driver=$(command -v chromedriver)
echo "$("$chromium" --version 2>/dev/null | head -1), $("$driver" --version | head -1 | cut -d' ' -f1-2)" >&2
echo "export ECCI_CHROMIUM=$chromium ECCI_CHROMEDRIVER=$driver"
