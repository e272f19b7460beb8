"""Seeds a fresh OpenBao dev server for the vault-kv plugin's tests, through its HTTP API.

Usage: seed.py <address> <root token>. Prints one JSON object: the JWTs the tests pass (signed
per run by an RSA key made here, shaped like a Nomad workload identity) and the revoked token.
Every secret value holds CANARY (see the golden harness). What it makes:

- KV v2 at secret/: db (version 1 {password}, version 2 {username, password, port, tls}),
  deleted (its only version soft-deleted), destroyed (its only version destroyed),
  limited (behind a rate-limit quota of one read an hour, used up), odd name?#% (a name that needs
  percent-encoding), top and other/db (what `?kv=1` with a v2 API path such as secret/data/top
  would read).
- KV v1 at kv1/: app {api_key}. KV v2 at the two-segment mount team/kv/: app {token}. A transit
  engine at transit/ (not KV). In the root token's cubbyhole: x {note}.
- Tokens with fixed ids: narrow-token (reads secret/data/db, secret/data/top,
  secret/metadata/top, secret/data/other/db and kv1/*; its policy denies the mounts lookup, but
  OpenBao serves that lookup to any token with a capability on the mount, so it still answers
  for secret/ and kv1/), revoked (created, then revoked).
- AppRole at approle/: role node (role id node-role, secret id CANARY-secret-id).
- JWT at jwt/: role nomad, RS256 tokens checked against the key made here, bound audience
  vault.io and bound claim nomad_namespace=default, like Nomad's workload identities.
- Namespaces: auth-ns/ with AppRole role ns (role id ns-role, secret id CANARY-secret-id),
  and its child auth-ns/team-a/ with KV v2 secret/team {token}.
"""
import base64
import json
import sys
import time

import urllib.parse

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ADDRESS, ROOT = sys.argv[1], sys.argv[2]


def call(method, path, body=None, namespace=None, token=ROOT, ok=(200, 204)):
    headers = {"X-Vault-Token": token}
    if namespace:
        headers["X-Vault-Namespace"] = namespace
    url = f"{ADDRESS}/v1/{urllib.parse.quote(path, safe='/')}"
    answer = requests.request(method, url, json=body, headers=headers, timeout=10)
    if answer.status_code not in ok:
        sys.exit(f"{method} {path}: HTTP {answer.status_code}: {answer.text}")
    return answer.json() if answer.text else {}


def kv2_put(path, data, namespace=None):
    return call("POST", f"secret/data/{path}", {"data": data}, namespace)


# Numbers as the writer spelled them (json.dumps would re-spell them): Vault keeps the text.
raw = requests.post(
    f"{ADDRESS}/v1/secret/data/numbers",
    data='{"data": {"big": 1E5, "price": 1.50, "id": 12345678901234567890, "password": "CANARY-n"}}',
    headers={"X-Vault-Token": ROOT, "Content-Type": "application/json"},
    timeout=10,
)
if raw.status_code not in (200, 204):
    sys.exit(f"POST secret/data/numbers: HTTP {raw.status_code}: {raw.text}")
kv2_put("db", {"password": "CANARY-v1"})
kv2_put("db", {"username": "app", "password": "CANARY-v2", "port": 5432, "tls": {"verify": True}})
kv2_put("deleted", {"password": "CANARY-deleted"})
call("DELETE", "secret/data/deleted")
kv2_put("destroyed", {"password": "CANARY-destroyed"})
call("PUT", "secret/destroy/destroyed", {"versions": [1]})
kv2_put("limited", {"password": "CANARY-limited"})
kv2_put("odd name?#%", {"password": "CANARY-odd-name"})
kv2_put("top", {"password": "CANARY-top"})
kv2_put("other/db", {"password": "CANARY-other-team"})
# One read an hour, used up here: every read of the tests then gets a real 429.
call("POST", "sys/quotas/rate-limit/limited", {"rate": 1, "interval": "1h", "path": "secret/data/limited"})
call("GET", "secret/data/limited")

call("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
call("POST", "kv1/app", {"api_key": "CANARY-kv1"})
call("POST", "sys/mounts/transit", {"type": "transit"})
call("POST", "sys/mounts/team/kv", {"type": "kv", "options": {"version": "2"}})
# A new v2 mount upgrades its storage for a moment first, refusing writes until then.
for _ in range(100):
    if call("POST", "team/kv/data/app", {"data": {"token": "CANARY-team-kv"}}, ok=(200, 204, 400, 503)).get("data"):
        break
    time.sleep(0.05)
else:
    sys.exit("team/kv/ never became writable")
call("POST", "cubbyhole/x", {"note": "CANARY-cubbyhole"})

call("PUT", "sys/policies/acl/narrow", {"policy": """
path "secret/data/db" { capabilities = ["read"] }
path "secret/data/top" { capabilities = ["read"] }
path "secret/metadata/top" { capabilities = ["read"] }
path "secret/data/other/db" { capabilities = ["read"] }
path "kv1/*" { capabilities = ["read"] }
path "sys/internal/ui/mounts/*" { capabilities = ["deny"] }
"""})
call("POST", "auth/token/create", {"id": "narrow-token", "policies": ["narrow"]})
revoked = call("POST", "auth/token/create", {"policies": ["default"]})["auth"]["client_token"]
call("POST", "auth/token/revoke", {"token": revoked})

call("PUT", "sys/policies/acl/reader", {"policy": 'path "secret/*" { capabilities = ["read"] }\npath "kv1/*" { capabilities = ["read"] }'})
call("POST", "sys/auth/approle", {"type": "approle"})
call("POST", "auth/approle/role/node", {"token_policies": ["reader"]})
call("POST", "auth/approle/role/node/role-id", {"role_id": "node-role"})
call("POST", "auth/approle/role/node/custom-secret-id", {"secret_id": "CANARY-secret-id"})

# JWT login with an RS256 key made for this run, as Nomad's workload identities are signed.
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
public = key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()
call("POST", "sys/auth/jwt", {"type": "jwt"})
call("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [public]})
call("POST", "auth/jwt/role/nomad", {
    "role_type": "jwt",
    "bound_audiences": ["vault.io"],
    "bound_claims": {"nomad_namespace": "default"},
    "user_claim": "nomad_job_id",
    "token_policies": ["reader"],
})


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(signer, namespace="default"):
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "nomad-test"}
    claims = {
        "aud": ["vault.io"], "iat": now, "nbf": now, "exp": now + 3600,
        "jti": "CANARY-jti", "sub": f"global:{namespace}:api:web:app:default",
        "nomad_namespace": namespace, "nomad_job_id": "api", "nomad_task": "app",
        "nomad_allocation_id": "5c6e8d2a-0000-4000-8000-000000000000",
    }
    body = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = signer.sign(body.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{body}.{b64(signature)}"


# Namespaces: a login in auth-ns/, reads in its child auth-ns/team-a/.
call("POST", "sys/namespaces/auth-ns")
call("POST", "sys/namespaces/team-a", namespace="auth-ns")
call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, namespace="auth-ns/team-a")
kv2_put("team", {"token": "CANARY-team"}, namespace="auth-ns/team-a")
call("PUT", "sys/policies/acl/team", {"policy": 'path "team-a/secret/*" { capabilities = ["read"] }\npath "team-a/sys/internal/ui/mounts/*" { capabilities = ["read"] }'}, namespace="auth-ns")
call("POST", "sys/auth/approle", {"type": "approle"}, namespace="auth-ns")
call("POST", "auth/approle/role/ns", {"token_policies": ["team"]}, namespace="auth-ns")
call("POST", "auth/approle/role/ns/role-id", {"role_id": "ns-role"}, namespace="auth-ns")
call("POST", "auth/approle/role/ns/custom-secret-id", {"secret_id": "CANARY-secret-id"}, namespace="auth-ns")

print(json.dumps({
    "jwt": jwt(key),
    "jwt_other_key": jwt(other),
    "jwt_other_namespace": jwt(key, "web"),
    "revoked_token": revoked,
}))
