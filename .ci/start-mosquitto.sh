#!/usr/bin/env bash
# Installs mosquitto (Debian package) if needed and starts it with its default
# settings on a free loopback port. Prints the variables the test suites read;
# use as: eval "$(bash .ci/start-mosquitto.sh)"
set -euo pipefail

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "installing mosquitto" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >&2
fi
# mosquitto_sub: the platform-like slow consumer of the logger burst test.
if ! command -v mosquitto_sub >/dev/null; then
  echo "installing mosquitto-clients" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients >&2
fi
bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
# Only the listener is configured; every limit keeps mosquitto's default
# (max_inflight_messages 20, max_queued_messages 1000), as on the platform.
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$dir/mosquitto.conf"
"$bin" -c "$dir/mosquitto.conf" > "$dir/mosquitto.log" 2>&1 &
pid=$!

for _ in $(seq 1 50); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" >/dev/null 2>&1 || {
  echo "mosquitto did not start; its log:" >&2
  cat "$dir/mosquitto.log" >&2
  exit 1
}
echo "mosquitto $("$bin" -h 2>/dev/null | head -1 | awk '{print $3}') on 127.0.0.1:$port (pid $pid)" >&2
echo "export ECCI_TEST_BROKER=127.0.0.1:$port ECCI_REQUIRE_BROKER=1 MOSQUITTO_PID=$pid"
