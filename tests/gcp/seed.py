"""Seeds a drongo server (the GCP emulator from PyPI) for the gcp plugin's tests, through its
Secret Manager REST API, and writes a service-account key file made for the run.

Usage: seed.py <endpoint> <key file>. Every value holds CANARY (see the golden harness).
Project `acme`: db (version 1 {"password": ...v1}, version 2 {"username", "password", "port"}),
plain (text), binary (bytes that are not UTF-8), old (version 1 disabled, 2 destroyed, 3 good).
"""
import base64
import json
import sys
import time

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ENDPOINT, KEY_FILE = sys.argv[1], sys.argv[2]

# drongo prints its address a moment before it accepts connections (seconds on a busy machine).
for _ in range(600):
    try:
        if requests.get(f"{ENDPOINT}/drongo/health", timeout=1).ok:
            break
    except requests.ConnectionError:
        pass
    time.sleep(0.05)
else:
    sys.exit(f"drongo at {ENDPOINT} did not answer /drongo/health in 30 s")


def call(path, body=None):
    answer = requests.post(f"{ENDPOINT}/v1/{path}", json=body or {}, timeout=10)
    if answer.status_code != 200:
        sys.exit(f"{path}: HTTP {answer.status_code}: {answer.text}")
    return answer.json()


def secret(name, *payloads):
    call(f"projects/acme/secrets?secretId={name}", {"replication": {"automatic": {}}})
    for payload in payloads:
        data = base64.b64encode(payload).decode()
        call(f"projects/acme/secrets/{name}:addVersion", {"payload": {"data": data}})


secret("db", b'{"password": "CANARY-gcp-v1"}', json.dumps({"username": "app", "password": "CANARY-gcp-v2", "port": 5432}).encode())
secret("plain", b"CANARY gcp plain text\n")
secret("binary", b"\x00\xffCANARY\xfe")
secret("old", b"CANARY-old-1", b"CANARY-old-2", b"CANARY-old-3")
call("projects/acme/secrets/old/versions/1:disable")
call("projects/acme/secrets/old/versions/2:destroy")

# A service-account key: the SDK signs its own token with it (no token endpoint is called).
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
with open(KEY_FILE, "w") as out:
    json.dump({
        "type": "service_account",
        "project_id": "acme",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "nomad@acme.iam.gserviceaccount.com",
        "client_id": "100000000000000000000",
        "token_uri": "https://oauth2.googleapis.com/token",
    }, out)
