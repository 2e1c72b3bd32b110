#!/usr/bin/env python3
"""A Python container sending what edge-AI apps send (a numpy frame, a datetime with
a time zone, a Decimal) to a Rust container, which sends it back; checks that what
comes back is equal to what was sent. paho-mqtt, pickle and numpy, as a Python
SDK app would; the ECCI_* variables of wire.md §1 set (read in ecci_env.py).

Usage: objects_peer.py. To every target, once subscribed, it sends two data
envelopes, each {'frame': 480x640x3 uint8, 'ts': 1.5, 'when': datetime(+02:00),
'price': Decimal('12.34'), 'label': 'cam0', 'seq': N}: seq 0 pickled with protocol
4, seq 1 with protocol 5 (numpy's `_frombuffer` form). It expects each back as
{'echo': contents} and compares: np.array_equal, dtype and shape for the frame,
== and the same tzinfo for the datetime, == and the same str for the Decimal.

It prints READY, then EQUAL <seq> per matching echo, DONE after both, and
ERROR <text> on any mismatch; it exits on DONE.
"""

import datetime
import decimal
import pickle
import sys

import numpy as np
import paho.mqtt.client as mqtt

from ecci_env import APP, HOST, ME, MY_B, PORT, TARGETS


def out(*words):
    print(*words, flush=True)


def message(seq):
    frame = (np.arange(480 * 640 * 3, dtype=np.uint32) * 7 % 251).astype(np.uint8).reshape(480, 640, 3)
    tz = datetime.timezone(datetime.timedelta(hours=2))
    return {
        "frame": frame,
        "ts": 1.5,
        "when": datetime.datetime(2026, 12, 2, 7, 30, 15, 250000, tzinfo=tz),
        "price": decimal.Decimal("12.34"),
        "label": "cam0",
        "seq": seq,
    }


state = {"equal": set()}


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe([(f"ECCI/{MY_B}/{APP}/app/+/{ME}", 2)])


def on_subscribe(client, userdata, mid, reason_codes, properties):
    out("READY")
    for target, broker in TARGETS.items():
        topic = f"ECCI/{broker}/{APP}/app/{ME}/{target}"
        for seq, protocol in ((0, 4), (1, 5)):
            payload = pickle.dumps({"type": "data", "contents": message(seq)}, protocol)
            client.publish(topic, payload, qos=2)


def mismatch(got, want):
    """Why `got` differs from `want`, or None."""
    if set(got) != set(want):
        return f"keys {sorted(got)} != {sorted(want)}"
    frame, sent = got["frame"], want["frame"]
    if not isinstance(frame, np.ndarray):
        return f"frame is a {type(frame)}"
    if frame.dtype != sent.dtype or frame.shape != sent.shape or not np.array_equal(frame, sent):
        return f"frame {frame.dtype} {frame.shape} differs"
    when = got["when"]
    if not isinstance(when, datetime.datetime) or when != want["when"] or when.tzinfo != want["when"].tzinfo:
        return f"when {when!r} != {want['when']!r}"
    price = got["price"]
    if not isinstance(price, decimal.Decimal) or str(price) != str(want["price"]):
        return f"price {price!r} != {want['price']!r}"
    for key in ("ts", "label", "seq"):
        if got[key] != want[key] or type(got[key]) is not type(want[key]):
            return f"{key} {got[key]!r} != {want[key]!r}"
    return None


def on_message(client, userdata, msg):
    envelope = pickle.loads(msg.payload)
    contents = envelope["contents"]
    echo = contents.get("echo") if isinstance(contents, dict) else None
    if envelope["type"] != "data" or not isinstance(echo, dict):
        out("ERROR", "unexpected", repr(envelope)[:200])
        return
    seq = echo.get("seq")
    why = mismatch(echo, message(seq))
    if why:
        out("ERROR", seq, why)
        return
    out("EQUAL", seq)
    state["equal"].add(seq)
    if state["equal"] == {0, 1}:
        out("DONE")
        client.disconnect()


def main():
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(HOST, PORT)
    client.loop_forever()


if __name__ == "__main__":
    sys.exit(main())
