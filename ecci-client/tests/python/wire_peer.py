#!/usr/bin/env python3
"""A container that handles inbound messages exactly as the published Python `Client` does
(wire.md §3-§5), written from wire.md alone: paho-mqtt, one network thread, and in
`on_message` `pickle.loads`, then only `envelope['type']` and `envelope['contents']`, and for a
command `contents['cmd']`, catching only `KeyError`. Anything else raised there ends the
network thread, and with it this process: a test sees that as a dead peer.

Usage: wire_peer.py MODE [ARG...], with the ECCI_* variables of wire.md §1 set (read in
ecci_env.py). MODE is one of:

- receiver: counts data messages; data contents are (run, i) with i counting from 0 in each
  run, or bytes, for which it prints `BYTES <length>`. On `{'cmd': 'exit', 'run': R}` prints `EXIT R <data seen in run R> <in order: 1 or 0>`
  and starts counting again (the first message also prints `KEYS <the envelope's keys>`, to
  show what a Rust sender adds beside them); on `{'cmd': 'ping'}` prints `PING` and answers the sender with
  `{'cmd': 'pong'}`; other commands print `CMD <name>`. Runs until its stdin closes.
- sender TARGET:SIZE...: once subscribed, publishes to each TARGET (a key of
  ECCI_PUB_TARGETS) a data message whose contents are SIZE MiB of bytes (SIZE 0: the small
  bytes b'small'), in the order given, at QoS 2, then prints `SENT` once the broker has all
  of them, and runs until its stdin closes.

It prints READY once subscribed, and one line per event.
"""

import pickle
import sys
import threading

import paho.mqtt.client as mqtt

from ecci_env import APP, HOST, ME, MY_B, PORT, TARGETS

MODE = sys.argv[1]
MIB = 1024 * 1024

state = {"run": None, "count": 0, "in_order": True}


def out(*words):
    print(*words, flush=True)


def send(client, target, kind, contents):
    topic = f"ECCI/{TARGETS.get(target, MY_B)}/{APP}/app/{ME}/{target}"
    return client.publish(topic, pickle.dumps({"type": kind, "contents": contents}), qos=2)


def on_connect(client, userdata, flags, reason_code, properties):
    filters = [f"ECCI/{MY_B}/{APP}/app/+/{ME}", f"ECCI/{MY_B}/{APP}/plugin/+/{ME}"]
    client.subscribe([(f, 2) for f in filters])


def on_subscribe(client, userdata, mid, reason_codes, properties):
    out("READY")
    if MODE == "sender":
        threading.Thread(target=send_all, args=(client,), daemon=True).start()


def send_all(client):
    infos = []
    for item in sys.argv[2:]:
        target, size = item.split(":")
        size = int(size)
        contents = bytes(size * MIB) if size else b"small"
        infos.append(send(client, target, "data", contents))
    for info in infos:
        info.wait_for_publish(120)
    out("SENT")


def on_message(client, userdata, msg):
    # As the Python Client: no guard around any of this but the KeyError of contents['cmd'].
    sender = msg.topic.split("/")[-2]
    envelope = pickle.loads(msg.payload)
    if not state.get("keys_shown"):
        state["keys_shown"] = True
        out("KEYS", ",".join(sorted(envelope)))
    kind = envelope["type"]
    contents = envelope["contents"]
    if kind == "data" and isinstance(contents, bytes):
        out("BYTES", len(contents))
    elif kind == "data":
        run, i = contents
        if state["run"] != run:
            state.update(run=run, count=0, in_order=True)
        if i != state["count"]:
            state["in_order"] = False
        state["count"] += 1
    elif kind == "cmd":
        try:
            cmd = contents["cmd"]
        except KeyError:
            return
        if cmd == "exit":
            run = contents["run"]
            seen = state["count"] if state["run"] == run else 0
            out("EXIT", run, seen, int(state["in_order"]))
            state.update(run=None, count=0, in_order=True)
        elif cmd == "ping":
            out("PING")
            send(client, sender, "cmd", {"cmd": "pong"})
        else:
            out("CMD", cmd)


def main():
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(HOST, PORT)
    # The network thread, as the Python Client runs it; the main thread waits for stdin.
    client.loop_start()
    sys.stdin.read()
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
