#!/usr/bin/env python3
"""File transfer (wire.md §6) written from wire.md alone (paho-mqtt, pickle, urllib and
http.server), to check that the Rust SDK exchanges files with Python containers and with a
fileManager plugin it did not write.

Usage: file_peer.py MODE [ARG], with the ECCI_* variables of wire.md §1 set (read in
ecci_env.py). MODE is one of:

- sender PATH: as the Python SDK's putHandler in a cloud container, sends the file at PATH
  (reqPutURL with file_path), then the in-memory object OBJECT (reqPutURL without file_path,
  uploaded as its pickle), to every key of ECCI_PUB_TARGETS through the fileManager of its
  own broker; the object's name is 'obj', the file's is FILE_NAME. Exits once both
  reqTransfers are acknowledged by the broker;
- receiver COUNT: on each resTransfer, GETs the URL with urllib, as the Python SDK's
  download_file / download_contents do: a name ending in '.bin' is a file, any other name an
  in-memory object, unpickled. Exits after COUNT transfers;
- filemanager [cloud|edge]: the fileManager plugin of broker ECCI_LOCAL_BROKER_ID
  (ECCI_CONTAINER_NAME must be 'fileManager') in cloud (the default) or edge mode, with its own
  HTTP store on 127.0.0.1:0 (a dict): answers reqPutURL with a PUT URL to the store, which
  requires Content-Length and refuses chunked bodies, and reqTransfer as wire.md §6 step 5
  says: in cloud mode, for a broker that is not its own and has more than one target
  container, one relay {'cmd': 'resTransfer', 'target': [...], 'file_name', 'getURL'} to
  that broker's fileManager; otherwise a resTransfer with a GET URL to each target container
  directly. As the platform's plugin it iterates the target of a reqTransfer as a dict, so a
  relay sent as reqTransfer kills it. In edge mode, a resTransfer addressed to it is a relay:
  it downloads the getURL into its store and sends its own resTransfer to each container of
  the target on its broker. Exits when its stdin closes.

It tells the test what happens by printing one line per event on stdout:
READY, SENT <name> <bytes>, FILE <name> <bytes> <sha256> <announced sha256 or ->,
OBJECT <name> <repr, long bytes shown as their length and sha256>, STORED <name> <bytes>,
TRANSFER <name> <container>..., RELAYED <name> <broker> <container>...,
COPIED <name> <bytes> <container>..., ERROR <text>.
"""

import hashlib
import os
import pickle
import queue
import secrets
import sys
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt

from ecci_env import APP, HOST, ME, MY_B, PORT, TARGETS

MODE = sys.argv[1]
# The fileManager's mode (wire.md §6): cloud or edge.
ROLE = sys.argv[2] if MODE == "filemanager" and len(sys.argv) > 2 else "cloud"
FILE_MANAGER = "fileManager"
# Bounds every wait, so that a peer that missed a message fails instead of hanging.
WAIT = 60

FILE_NAME = "modèle v2.bin"
# What the sender sends as an in-memory object: the types Python applications pass around.
OBJECT = {
    "weights": b"\x00\x01\xfe\xff",
    "shape": (2, 3),
    "lr": 0.125,
    "bias": None,
    "name": "modèle",
    "layers": [1, -2, 3],
    "big": 2**70,
    "nested": {"ok": True},
    # Larger than a protocol 4 frame (64 KiB).
    "blob": bytes(range(256)) * 400,
}

# The 'file' contents that arrived, with their topic's sender, for the main thread.
inbox = queue.Queue()
subscribed = threading.Event()


def out(*words):
    print(*words, flush=True)


def envelope(contents):
    return pickle.dumps({"type": "file", "contents": contents})


def publish(client, topic, contents):
    """Publishes a 'file' envelope and waits until the broker has it."""
    info = client.publish(topic, envelope(contents), qos=2)
    info.wait_for_publish(WAIT)
    if not info.is_published():
        raise RuntimeError(f"publishing to {topic} was not acknowledged")


def inbound_filters():
    """The plugin topics this container listens on (wire.md §2)."""
    return [f"ECCI/{MY_B}/{APP}/plugin/+/{ME}"]


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe([(f, 2) for f in inbound_filters()])


def on_subscribe(client, userdata, mid, reason_codes, properties):
    subscribed.set()


def on_message(client, userdata, msg):
    # The sender is the fifth segment (no mountpoints here).
    sender = msg.topic.split("/")[4]
    envelope = pickle.loads(msg.payload)
    if envelope.get("type") != "file":
        out("ERROR", "unexpected type", repr(envelope.get("type")))
        return
    inbox.put((sender, envelope["contents"]))


def next_file_message(cmd):
    """The next inbound 'file' message, which must be a `cmd`."""
    sender, contents = inbox.get(timeout=WAIT)
    if contents.get("cmd") != cmd:
        raise RuntimeError(f"expected {cmd}, got {contents!r} from {sender}")
    return sender, contents


def plugin_topic():
    """Where a cloud container's requests go: its own broker's fileManager (wire.md §6)."""
    return f"ECCI/{MY_B}/{APP}/plugin/{ME}/{FILE_MANAGER}"


def put(client, name, body, length, file_path=None):
    """Steps 1 to 4 of wire.md §6 for one object: ask for a PUT URL, upload, ask for the transfer."""
    request = {"cmd": "reqPutURL", "source_broker_id": MY_B, "file_name": name}
    if file_path is not None:
        request["file_path"] = file_path
    publish(client, plugin_topic(), request)
    _, reply = next_file_message("resPutURL")
    if reply["file_name"] != name or reply.get("file_path") != file_path:
        raise RuntimeError(f"resPutURL for another request: {reply['file_name']!r}")
    # Presigned PUT URLs refuse chunked bodies: the length must be explicit. The content
    # type is the Python SDK's, wrong as it is: the body is raw.
    headers = {"Content-Length": str(length), "Content-Type": "multipart/form-data"}
    upload = urllib.request.Request(reply["putURL"], data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(upload, timeout=WAIT) as response:
        response.read()
    target = {}
    for container, broker in TARGETS.items():
        target.setdefault(broker, []).append(container)
    publish(client, plugin_topic(), {"cmd": "reqTransfer", "file_name": name, "target": target})
    out("SENT", name, length)


def run_sender(client):
    path = sys.argv[2]
    with open(path, "rb") as f:
        put(client, FILE_NAME, f, os.path.getsize(path), file_path=path)
    body = pickle.dumps(OBJECT)
    put(client, "obj", body, len(body))


def run_receiver(client):
    for _ in range(int(sys.argv[2])):
        sender, offer = next_file_message("resTransfer")
        if sender != FILE_MANAGER:
            raise RuntimeError(f"resTransfer from {sender}")
        name = offer["file_name"]
        with urllib.request.urlopen(offer["getURL"], timeout=WAIT) as response:
            data = response.read()
        if name.endswith(".bin"):
            # The Python SDK reads file_name and getURL only; the digest is shown, not checked.
            announced = offer.get("sha256", "-")
            out("FILE", name, len(data), hashlib.sha256(data).hexdigest(), announced)
        else:
            out("OBJECT", name, repr(shown(pickle.loads(data))))


class Digest:
    """Long bytes as shown on the one line of output: length and sha256."""

    def __init__(self, data):
        self.data = data

    def __repr__(self):
        return f"<{len(self.data)} bytes, sha256 {hashlib.sha256(self.data).hexdigest()}>"


def shown(value):
    """`value` with bytes longer than 64 replaced by their Digest, to print it."""
    if isinstance(value, bytes) and len(value) > 64:
        return Digest(value)
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v) for v in value]
    if isinstance(value, tuple):
        return tuple(shown(v) for v in value)
    return value


class Store:
    """The plugin's object store: objects in memory, reached through URLs with a random token."""

    def __init__(self):
        self.lock = threading.Lock()
        self.objects = {}
        # (method, path) -> the tokens its URLs carry (one per URL handed out).
        self.tokens = {}
        self.server = None

    def path(self, name):
        return f"/{APP.lower()}/{urllib.parse.quote(name, safe='')}"

    def put(self, name, data):
        with self.lock:
            self.objects[self.path(name)] = data

    def url(self, method, name):
        path = self.path(name)
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens.setdefault((method, path), set()).add(token)
        host, port = self.server.server_address
        return f"http://{host}:{port}{path}?token={token}"

    def allowed(self, method, raw_path):
        path, _, query = raw_path.partition("?")
        token = urllib.parse.parse_qs(query).get("token", [""])[0]
        with self.lock:
            expected = self.tokens.get((method, path), set())
        return path if any(secrets.compare_digest(t, token) for t in expected) else None


STORE = Store()


class Handler(BaseHTTPRequestHandler):
    """PUT and GET of the store's objects, HTTP/1.1 with keep-alive."""

    protocol_version = "HTTP/1.1"

    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, status, why):
        out("ERROR", self.command, why)
        # The body was not read: the connection cannot carry another request.
        self.close_connection = True
        self.reply(status)

    def do_PUT(self):
        path = STORE.allowed("PUT", self.path)
        if path is None:
            return self.refuse(403, "bad token")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.refuse(411, "chunked upload")
        length = self.headers.get("Content-Length")
        if length is None:
            return self.refuse(411, "no Content-Length")
        data = self.rfile.read(int(length))
        if len(data) != int(length):
            return self.refuse(400, "short body")
        with STORE.lock:
            STORE.objects[path] = data
        out("STORED", urllib.parse.unquote(path.rsplit("/", 1)[1]), len(data))
        self.reply(200)

    def do_GET(self):
        path = STORE.allowed("GET", self.path)
        if path is None:
            return self.refuse(403, "bad token")
        with STORE.lock:
            data = STORE.objects.get(path)
        if data is None:
            return self.refuse(404, "no such object")
        self.reply(200, data)

    def log_message(self, format, *args):
        pass


def serve_file_manager(client):
    """Answers requests until stdin closes."""
    STORE.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=STORE.server.serve_forever, daemon=True).start()
    threading.Thread(target=lambda: (sys.stdin.read(), inbox.put(None)), daemon=True).start()
    while (item := inbox.get()) is not None:
        sender, request = item
        cmd, name = request.get("cmd"), request.get("file_name")
        if cmd == "reqPutURL":
            reply = {"cmd": "resPutURL", "file_name": name, "putURL": STORE.url("PUT", name)}
            if "file_path" in request:
                reply["file_path"] = request["file_path"]
            topic = f"ECCI/{request['source_broker_id']}/{APP}/plugin/{FILE_MANAGER}/{sender}"
            publish(client, topic, reply)
        elif cmd == "reqTransfer":
            # As the platform's plugin: the target is a dict (a list here raises).
            for broker, containers in request["target"].items():
                if ROLE == "cloud" and broker != MY_B and len(containers) > 1:
                    relay = {
                        "cmd": "resTransfer",
                        "target": containers,
                        "file_name": name,
                        "getURL": STORE.url("GET", name),
                    }
                    publish(client, f"ECCI/{broker}/{APP}/plugin/{FILE_MANAGER}/{FILE_MANAGER}", relay)
                    out("RELAYED", name, broker, *containers)
                    continue
                for container in containers:
                    offer = {"cmd": "resTransfer", "file_name": name, "getURL": STORE.url("GET", name)}
                    publish(client, f"ECCI/{broker}/{APP}/plugin/{FILE_MANAGER}/{container}", offer)
                out("TRANSFER", name, *containers)
        elif cmd == "resTransfer" and ROLE == "edge":
            # A cloud plugin's relay: copy the object here, then offer it on this broker.
            with urllib.request.urlopen(request["getURL"], timeout=WAIT) as response:
                data = response.read()
            STORE.put(name, data)
            for container in request["target"]:
                offer = {"cmd": "resTransfer", "file_name": name, "getURL": STORE.url("GET", name)}
                publish(client, f"ECCI/{MY_B}/{APP}/plugin/{FILE_MANAGER}/{container}", offer)
            out("COPIED", name, len(data), *request["target"])
        else:
            out("ERROR", "unexpected request", repr(request))
    STORE.server.shutdown()


def main():
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(HOST, PORT)
    client.loop_start()
    try:
        if not subscribed.wait(WAIT):
            raise RuntimeError("not subscribed in time")
        out("READY")
        {"sender": run_sender, "receiver": run_receiver, "filemanager": serve_file_manager}[MODE](client)
    except Exception as e:
        out("ERROR", type(e).__name__, e)
        raise
    finally:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    main()
