"""Fixtures for the schemathesis run (scripts/schemathesis.sh): objects of every kind the API
has, made through the API, so that the fuzzer's requests to `/…/{id}` reach real ones instead of
404s. Writes schemathesis.toml (each path parameter bound to a fixture's id) and prints the API
key the fuzzer uses.

Operations that could lock the fuzzer out (revoking a key, changing or removing a member,
deleting a tenant) get objects of their own: another key, another member, another tenant.
"""
import json
import sys
import time
import urllib.error
import urllib.request

base, out = sys.argv[1], sys.argv[2]


def call(method, path, body=None, token=None, tenant=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    if token:
        req.add_header("authorization", "Bearer " + token)
    if tenant:
        req.add_header("x-tenant-id", tenant)
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


token = call("POST", "/api/v1/auth/login",
             {"email": "fuzz@example.test", "password": "fuzz-password-1"})["token"]
ids = {}
# Monitors aimed at made-up hosts (the namespace has only loopback: nothing is reached).
ids["monitors"] = call("POST", "/api/v1/monitors", {"name": "made-up", "kind": "http",
                       "url": "http://x.dev/", "interval_seconds": 5,
                       "bearer_token": "fuzz-secret"}, token)["id"]
beat = call("POST", "/api/v1/monitors", {"name": "beat", "kind": "heartbeat",
            "interval_seconds": 60}, token)
ids["push"] = beat["push_token"]
ids["channels"] = call("POST", "/api/v1/channels", {"name": "hook", "kind": "webhook",
                       "url": "http://0.com/hook"}, token)["id"]
ids["rules"] = call("POST", "/api/v1/rules", {"name": "all", "monitors": "all",
                    "events": ["down"], "channels": [ids["channels"]]}, token)["id"]
ids["maintenance"] = call("POST", "/api/v1/maintenance", {"name": "window",
                          "monitors": [ids["monitors"]], "starts_at": "2030-01-01T00:00:00Z",
                          "ends_at": "2030-01-01T02:00:00Z"}, token)["id"]
ids["status-pages"] = call("POST", "/api/v1/status-pages", {"name": "public", "slug": "public",
                           "monitors": [ids["monitors"]]}, token)["id"]
# An incident: the heartbeat reports DOWN.
call("POST", "/api/v1/push/" + ids["push"] + "?status=down&msg=fuzz", {})
for _ in range(100):
    items = call("GET", "/api/v1/incidents", token=token)["items"]
    if items:
        ids["incidents"] = items[0]["id"]
        break
    time.sleep(0.1)
# What the lock-out operations act on.
ids["api-keys"] = call("POST", "/api/v1/api-keys", {"name": "victim", "role": "viewer"},
                       token)["id"]
member = call("POST", "/api/v1/users", {"email": "victim@example.test", "role": "viewer",
              "password": "victim-password-1"}, token)
ids["users"] = member["id"]
ids["tenants"] = call("POST", "/api/v1/tenants", {"name": "victim"}, token)["id"]
ids["invitations"] = call("POST", "/api/v1/users", {"email": "invited@example.test",
                          "role": "viewer"}, token)["id"]
# Deletions act on objects of their own, so the others stay for the rest of the run.
doomed = {
    "monitors": call("POST", "/api/v1/monitors", {"name": "doomed", "kind": "tcp",
                     "host": "x.dev", "port": 9}, token)["id"],
    "channels": call("POST", "/api/v1/channels", {"name": "doomed", "kind": "webhook",
                     "url": "http://0.com/doomed"}, token)["id"],
    "rules": call("POST", "/api/v1/rules", {"name": "doomed", "monitors": "all",
                  "events": ["up"], "channels": [ids["channels"]]}, token)["id"],
    "maintenance": call("POST", "/api/v1/maintenance", {"name": "doomed", "monitors": "all",
                        "starts_at": "2031-01-01T00:00:00Z", "ends_at": "2031-01-01T01:00:00Z"},
                        token)["id"],
    "status-pages": call("POST", "/api/v1/status-pages", {"name": "doomed", "slug": "doomed",
                         "monitors": [ids["monitors"]]}, token)["id"],
}
key = call("POST", "/api/v1/api-keys", {"name": "fuzz", "role": "admin"}, token)["key"]

with open(out, "w") as f:
    for prefix, value in ids.items():
        name = "token" if prefix == "push" else "id"
        f.write("[[operations]]\n")
        f.write('include-path-regex = "^/api/v1/%s/\\\\{%s\\\\}"\n' % (prefix, name))
        if prefix in doomed:
            f.write('exclude-method-regex = "^DELETE$"\n')
        f.write('parameters = { "path.%s" = "%s" }\n\n' % (name, value))
    # `apply` with `prune` would delete every fixture at once (its own tests cover pruning).
    f.write("[[operations]]\n")
    f.write('include-name = "POST /api/v1/config/apply"\n')
    f.write('parameters = { "query.prune" = false }\n\n')
    for prefix, value in doomed.items():
        f.write("[[operations]]\n")
        f.write('include-name = "DELETE /api/v1/%s/{id}"\n' % prefix)
        f.write('parameters = { "path.id" = "%s" }\n\n' % value)
print(key)
