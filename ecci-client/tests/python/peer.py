#!/usr/bin/env python3
"""An ECCI container written from wire.md alone (paho-mqtt and pickle), to check that the
Rust SDK interoperates with Python peers.

Usage: peer.py MODE, with the ECCI_* variables of wire.md §1 set (read in ecci_env.py). MODE is
one of:

- echo: sends a bad payload (a pickled list) and an object whose unpickling would call
  os.system (inert data to a Rust receiver), then
  a hello (data and cmd) to every target once subscribed, answers every data
  message with {'echo': contents} and every command with {'cmd': 'ack', 'of': contents};
  exits on the command 'quit';
- component: the readiness component of wire.md §4; once started it sends
  {'from': me, 'started': True} to its controller, and exits on 'exit';
- controller: the global controller of wire.md §4; once started it waits for one data
  message from every target, then sends 'exit' to all and exits.

It tells the test what happens by printing one line per event on stdout:
READY, DATA <sender> <repr>, CMD <sender> <repr>, STARTED, EXIT, QUIT, DONE, ERROR <text>.
"""

import json
import os
import pickle
import sys

import paho.mqtt.client as mqtt

from ecci_env import AGENT, APP, CONTROLLER, HOST, ME, MY_B, PORT, TARGETS

MODE = sys.argv[1]

state = {"started": False, "ready_from": set(), "data_from": set(), "closing": set()}


def out(*words):
    print(*words, flush=True)


def brokers():
    return {**TARGETS, **CONTROLLER}


def send(client, target, kind, contents):
    broker = brokers().get(target, MY_B)
    topic = f"ECCI/{broker}/{APP}/app/{ME}/{target}"
    return client.publish(topic, pickle.dumps({"type": kind, "contents": contents}), qos=2).mid


def on_publish(client, userdata, mid, reason_code, properties):
    # Disconnect only once the last messages were acknowledged, or they could be lost.
    closing = state["closing"]
    if mid in closing:
        closing.discard(mid)
        if not closing:
            client.disconnect()


def report(client, ready_type):
    body = {"app_id": APP, "container_name": ME, "agent_id": AGENT, "ready_type": ready_type}
    client.publish(f"toEdgeAI/{MY_B}/con_cntr_ready", json.dumps(body), qos=2)


def controller_name():
    return next(iter(CONTROLLER))


def on_connect(client, userdata, flags, reason_code, properties):
    filters = [f"ECCI/{MY_B}/{APP}/app/+/{ME}", f"ECCI/{MY_B}/{APP}/plugin/+/{ME}"]
    client.subscribe([(f, 2) for f in filters])


class Evil:
    """What an attacker would send: unpickling it calls os.system."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def on_subscribe(client, userdata, mid, reason_codes, properties):
    out("READY")
    if MODE == "echo":
        # Two payloads a receiver must survive (wire.md §3), before the real hello.
        for target in TARGETS:
            topic = f"ECCI/{TARGETS[target]}/{APP}/app/{ME}/{target}"
            client.publish(topic, pickle.dumps(["not", "an", "envelope"]), qos=2)
            client.publish(topic, pickle.dumps({"type": "data", "contents": Evil()}), qos=2)
        hello = {
            "hello": ME,
            "n": 1,
            "blob": b"\x00\xff",
            "pair": (1, "a"),
            "x": 2.5,
            "nothing": None,
            "nested": {"list": [1, 2, 3], "flag": True},
        }
        for target in TARGETS:
            send(client, target, "data", hello)
            send(client, target, "cmd", {"cmd": "py_hello"})
    elif MODE == "component" and not state["started"]:
        send(client, controller_name(), "cmd", {"cmd": "ready"})
    elif MODE == "controller" and not state["started"]:
        report(client, "controller")
        for target in TARGETS:
            send(client, target, "cmd", {"cmd": "req_ready"})


def on_message(client, userdata, msg):
    # The sender is the fifth segment from the end (no mountpoints here).
    sender = msg.topic.split("/")[-2]
    envelope = pickle.loads(msg.payload)
    kind, contents = envelope["type"], envelope["contents"]
    if kind == "data":
        out("DATA", sender, repr(contents))
        if MODE == "echo":
            send(client, sender, "data", {"echo": contents})
        elif MODE == "controller":
            state["data_from"].add(sender)
            if state["data_from"] >= set(TARGETS) and not state["closing"]:
                mids = {send(client, target, "cmd", {"cmd": "exit"}) for target in TARGETS}
                state["closing"].update(mids)
                out("DONE")
        return
    if kind != "cmd":
        out("ERROR", "unexpected type", repr(kind))
        return
    out("CMD", sender, repr(contents))
    name = contents.get("cmd") if isinstance(contents, dict) else None
    if MODE == "echo":
        if name == "quit":
            out("QUIT")
            client.disconnect()
        else:
            send(client, sender, "cmd", {"cmd": "ack", "of": contents})
    elif MODE == "component":
        if name == "req_ready":
            send(client, controller_name(), "cmd", {"cmd": "ready"})
        elif name == "start" and not state["started"]:
            state["started"] = True
            out("STARTED")
            send(client, controller_name(), "data", {"from": ME, "started": True})
        elif name == "exit":
            out("EXIT")
            client.disconnect()
    elif MODE == "controller" and name == "ready":
        if sender not in TARGETS:
            out("ERROR", "ready from a stranger", sender)
            return
        state["ready_from"].add(sender)
        if state["ready_from"] >= set(TARGETS):
            # As the Python SDK: every complete round (re)starts all targets.
            for target in TARGETS:
                send(client, target, "cmd", {"cmd": "start"})
            report(client, "app")
            if not state["started"]:
                state["started"] = True
                out("STARTED")


def main():
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_publish = on_publish
    client.connect(HOST, PORT)
    client.loop_forever()


if __name__ == "__main__":
    main()
