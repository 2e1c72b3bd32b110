#!/usr/bin/env python3
"""A receiving container as the Python SDK is one (paho-mqtt, clean session, QoS 2, every
payload unpickled on the network thread and queued for the application), written from
wire.md alone: it counts the data messages that arrive.

Usage: counting_receiver.py COUNT, with the ECCI_* variables of wire.md §1 set. Prints
READY once subscribed, then DONE <received> <distinct> <others> when COUNT distinct data
messages arrived or nothing arrived for 15 s (<others>: non-data messages, such as any
acknowledgement it must never be sent).
"""

import pickle
import queue
import sys
import threading
import time

import paho.mqtt.client as mqtt

from ecci_env import APP, HOST, ME, MY_B, PORT

COUNT = int(sys.argv[1])
inbox = queue.Queue()
state = {"last": time.monotonic()}


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe(f"ECCI/{MY_B}/{APP}/app/+/{ME}", qos=2)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    print("READY", flush=True)


def on_message(client, userdata, msg):
    # As the Python SDK does: unpickle on the network thread, read type and contents only.
    envelope = pickle.loads(msg.payload)
    inbox.put((envelope["type"], envelope["contents"]))
    state["last"] = time.monotonic()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, clean_session=True)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(HOST, PORT)
client.loop_start()

received, others, seen = 0, 0, set()
while len(seen) < COUNT:
    try:
        kind, contents = inbox.get(timeout=1)
    except queue.Empty:
        if time.monotonic() - state["last"] > 15:
            break
        continue
    if kind == "data":
        received += 1
        seen.add(contents)
    else:
        others += 1
print("DONE", received, len(seen), others, flush=True)
client.loop_stop()
