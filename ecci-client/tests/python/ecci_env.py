"""The ECCI_* variables of wire.md §1 that the test peers read, once, at import."""

import ast
import os

env = os.environ
HOST = env["ECCI_LOCAL_BROKER_IP"]
PORT = int(env.get("ECCI_LOCAL_BROKER_PORT") or 1883)
MY_B = env["ECCI_LOCAL_BROKER_ID"]
APP = env["ECCI_APP_ID"]
ME = env["ECCI_CONTAINER_NAME"]
# Python dict literals: target or controller name -> broker id.
TARGETS = ast.literal_eval(env.get("ECCI_PUB_TARGETS") or "{}")
CONTROLLER = ast.literal_eval(env.get("ECCI_APP_CONTROLLER_CONTAINER") or "{}")
AGENT = env.get("ECCI_AGENT_ID")
