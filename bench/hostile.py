#!/usr/bin/env python3
"""Hostile input: runs attacks a caller with a readonly token (or none) can make against a
fresh `qudag-mcp serve --dev` per attack, and prints one line each: the statuses it got, how
much the server's resident memory grew (/proc/PID/status), how large the audit records got.
The bounds these attacks meet are listed in docs/operations.md ("What one caller can make a
node hold").

usage: bench/hostile.py BIN   (a built qudag-mcp binary; debug or release)
environment: PROBE_PORT (default 38411), a free loopback port"""
import base64, http.client, json, os, socket, subprocess, sys, tempfile, time, uuid

BIN = sys.argv[1]
PORT = int(os.environ.get("PROBE_PORT", "38411"))
work = tempfile.mkdtemp(prefix="qudag-hostile-")
audit = os.path.join(work, "audit.jsonl")
env = dict(os.environ, QUDAG_PORT=str(PORT), QUDAG_RATE_LIMIT="60", QUDAG_AUDIT_SINK="file",
           QUDAG_AUDIT_FILE=audit, QUDAG_DEV_KEY_PATH=os.path.join(work, "dev.key"),
           QUDAG_LOG_LEVEL="warn", HOME=work, XDG_STATE_HOME=os.path.join(work, "state"))
for k in list(env):
    if k.startswith("QUDAG_TEST"):
        del env[k]

def start(extra=None, dev=True):
    e = dict(env, **(extra or {}))
    args = [BIN, "serve"] + (["--dev"] if dev else [])
    p = subprocess.Popen(args, env=e, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "a"))
    procs.append(p)
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2); c.request("GET", "/health/live")
            if c.getresponse().status == 200: return p
        except OSError: pass
        if p.poll() is not None: sys.exit(f"server exited: {open(os.path.join(work,'server.log')).read()[-2000:]}")
        time.sleep(0.1)
    sys.exit("server not live")

import atexit
procs = []
atexit.register(lambda: [q.kill() for q in procs if q.poll() is None])
def stop(p):
    p.terminate(); p.wait(30)

def rss(p):  # KiB
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])

def token(role):
    e = dict(env)
    return subprocess.check_output([BIN, "dev-token", "--role", role], env=e, text=True).strip()

def req(method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, dict(r.getheaders()), data

def mcp(tok, msg, session=None, extra=None):
    h = {"Authorization": f"Bearer {tok}"} if tok else {}
    if session: h["Mcp-Session-Id"] = session
    h.update(extra or {})
    return req("POST", "/mcp", json.dumps(msg).encode(), h)

def init(tok, client_info=None, caps=None):
    s, h, _ = mcp(tok, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": caps or {},
        "clientInfo": client_info or {"name": "probe", "version": "1"}}})
    sid = {k.lower(): v for k, v in h.items()}.get("mcp-session-id")
    if sid: mcp(tok, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    return s, sid

def audit_stats():
    time.sleep(1.5)
    if not os.path.exists(audit): return 0, 0
    lines = open(audit, "rb").read().splitlines()
    return len(lines), max((len(l) for l in lines), default=0)

def row(name, result):
    print(f"{name:<58} {result}", flush=True)

# 1. 200 MB body to /admin/authz/explain without a token (streamed in 1 MiB chunks)
p = start(); base = rss(p)
s = socket.create_connection(("127.0.0.1", PORT)); total = 200 << 20
s.sendall(f"POST /admin/authz/explain HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n\r\n".encode())
sent = 0; chunk = b"x" * (1 << 20); status = None; peak = base
import select
s.settimeout(10)
try:
    while sent < total:
        s.sendall(chunk); sent += len(chunk)
        peak = max(peak, rss(p))
        if select.select([s], [], [], 0)[0]:
            d = s.recv(4096)
            status = d.split(b" ")[1].decode() if d else "(closed)"; break
except (BrokenPipeError, ConnectionResetError, TimeoutError) as e:
    status = status or f"({e.__class__.__name__})"
s.settimeout(30)
if status is None or status.startswith("("):
    try:
        d = s.recv(4096); status = d.split(b" ")[1].decode() if d else (status or "(closed)")
    except Exception as e: status = status or f"({e.__class__.__name__})"
peak = max(peak, rss(p))
row("200 MB body, POST /admin/authz/explain, no token", f"status {status} after {sent>>20} MiB sent; RSS +{(peak-base)//1024} MiB")
stop(p)

# 2. 2 MB tool argument and 2 MB clientInfo (readonly token): largest audit record
p = start(); ro = token("readonly")
_, sid = init(ro, client_info={"name": "n" * (2 << 20), "version": "1"})
_, sid = init(ro)
st, _, body = mcp(ro, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "system_health", "arguments": {"detail": "y" * (2 << 20)}}}, sid)
n, largest = audit_stats()
row("2 MB clientInfo + 2 MB tool argument (readonly)", f"response {len(body)} bytes; largest audit record {largest} bytes")
stop(p)

# 3. 40 resources/subscribe with 1 MB URIs on one session (readonly)
p = start(); ro = token("readonly"); _, sid = init(ro); base = rss(p); codes = {}
for i in range(40):
    st, _, b = mcp(ro, {"jsonrpc": "2.0", "id": 10 + i, "method": "resources/subscribe", "params": {"uri": "qudag://" + str(i) + "x" * (1 << 20)}}, sid)
    k = st if st != 200 else ("ok" if b'"result"' in b else "error")
    codes[k] = codes.get(k, 0) + 1
row("40 resources/subscribe, 1 MB URIs, one session (readonly)", f"{codes}; RSS +{(rss(p)-base)//1024} MiB")
stop(p)

# 4. 80 garbage bearer tokens at QUDAG_RATE_LIMIT=60
p = start(); n0, _ = audit_stats(); codes = {}
for i in range(80):
    st, _, _ = mcp("garbage." + str(i), {"jsonrpc": "2.0", "id": 1, "method": "ping"})
    codes[st] = codes.get(st, 0) + 1
n1, _ = audit_stats()
row("80 garbage bearer tokens, QUDAG_RATE_LIMIT=60", f"{codes}; audit records +{n1-n0}")
stop(p)

# 5. 80 unsolicited JSON-RPC responses on one session (readonly)
p = start(); ro = token("readonly"); _, sid = init(ro); codes = {}
for i in range(80):
    st, _, _ = mcp(ro, {"jsonrpc": "2.0", "id": 1000 + i, "result": {}}, sid)
    codes[st] = codes.get(st, 0) + 1
row("80 unsolicited JSON-RPC responses, one session", str(codes))
stop(p)

# 6. a world-readable developer key planted before serve --dev
p = start(); stop(p)
key = env["QUDAG_DEV_KEY_PATH"]; os.chmod(key, 0o644)
p2 = subprocess.Popen([BIN, "serve", "--dev"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
try:
    time.sleep(3); alive = p2.poll() is None
finally:
    p2.terminate(); err = p2.communicate(timeout=30)[1]
row("world-readable developer key at QUDAG_DEV_KEY_PATH", "server started" if alive else "refused: " + err.strip().splitlines()[-1][:90])
os.chmod(key, 0o600)

# 7. /admin/audit with a rebinding Host, QUDAG_REQUIRE_AUTH=false
p = start({"QUDAG_REQUIRE_AUTH": "false"}, dev=False)
st, _, _ = req("GET", "/admin/audit", headers={"Host": "evil.example"})
row("GET /admin/audit, Host: evil.example, auth off", f"status {st}")
stop(p)

# 8. readonly caller: many sessions, each with subscriptions, within the rate limit
p = start({"QUDAG_RATE_LIMIT": "6000"}); ro = token("readonly"); base = rss(p); codes = {}
for i in range(300):
    st, sid = init(ro, client_info={"name": "c" * 60000, "version": "1"}, caps={"experimental": {"x": {"blob": "e" * 60000}}})
    codes[st] = codes.get(st, 0) + 1
row("300 sessions, 60 kB clientInfo + 60 kB experimental (readonly)", f"{codes}; RSS +{(rss(p)-base)//1024} MiB")
stop(p)

# 9. 200 connections from one address, each stalling a ~4 MiB /mcp body one byte short (readonly)
p = start(); ro = token("readonly"); base = rss(p); size = (4 << 20) - 16; held = []; refused = 0
body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"system_health","arguments":{"x":"' + b"a" * size
for i in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(20)
        s.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nAuthorization: Bearer {ro}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {size}\r\n\r\n".encode())
        s.sendall(body[: size - 1]); held.append(s)
    except OSError:
        refused += 1
time.sleep(2)
answered = 0
for s in held:
    s.settimeout(0.05)
    try:
        if s.recv(16): answered += 1
    except OSError:
        pass
row("200 stalled ~4 MiB bodies from one address (readonly)", f"{answered} answered early, {refused} refused; RSS +{(rss(p)-base)//1024} MiB")
for s in held: s.close()
stop(p)

# 10. everything at once, one readonly principal from one address, the rate limit out of the
# way: sessions with subscriptions, listening streams, stalled bodies, half-sent request heads,
# unsolicited answers. Peak growth is what the per-caller bounds allow together; after the
# caller lets go, the node should give the sessions' and connections' memory back (sessions
# stay until their idle timeout, so the second number shows what sessions keep).
p = start({"QUDAG_RATE_LIMIT": "1000000", "QUDAG_RATE_LIMIT_BURST": "1000000"}); ro = token("readonly")
base = rss(p); sessions = []; subs = {}; held = []
for i in range(120):
    st, sid = init(ro, client_info={"name": "c" * 60000, "version": "v" * 60000}, caps={"experimental": {"x": {"blob": "e" * 60000}}})
    if sid: sessions.append(sid)
for sid in sessions:
    uris = ["qudag://status/dag", "qudag://status/vault", "qudag://keys/signing"] + [f"qudag://status/dag/{j}" + "u" * 1000 for j in range(40)]
    for j, uri in enumerate(uris):
        st, _, b = mcp(ro, {"jsonrpc": "2.0", "id": 100 + j, "method": "resources/subscribe", "params": {"uri": uri}}, sid)
        k = "ok" if st == 200 and b'"result"' in b else st if st != 200 else "error"
        subs[k] = subs.get(k, 0) + 1
    for j in range(20):
        mcp(ro, {"jsonrpc": "2.0", "id": 5000 + j, "result": {"x": "r" * 1000}}, sid)
def open_socket():
    s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(5); return s
streams = 0
for sid in sessions[:24]:
    try:
        s = open_socket()
        s.sendall(f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nAuthorization: Bearer {ro}\r\nMcp-Session-Id: {sid}\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = s.recv(64)
        if b" 200 " in head: streams += 1; held.append(s)
        else: s.close()
    except OSError: pass
size = (4 << 20) - 16; bodies = 0
body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"system_health","arguments":{"x":"' + b"a" * size
for i in range(8):
    try:
        s = open_socket()
        s.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nAuthorization: Bearer {ro}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {size}\r\n\r\n".encode())
        s.sendall(body[: size - 1]); held.append(s); bodies += 1
    except OSError: pass
heads = 0
for i in range(300):
    try:
        s = open_socket()
        s.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nX-Pad: {'h' * 60000}".encode()); held.append(s); heads += 1
    except OSError: break
time.sleep(3)
peak = rss(p)
still_open = 0
for s in held:
    s.setblocking(False)
    try:
        data = s.recv(4096)  # b"": closed; a refusal; or an event on a held stream
        still_open += 1 if data and not data.startswith(b"HTTP/1.1 4") else 0
    except BlockingIOError:
        still_open += 1  # nothing to read and not closed: the server still holds it
    except OSError:
        pass
for s in held: s.close()
time.sleep(3)
row("all at once, one readonly caller, rate limit out of the way",
    f"{len(sessions)} sessions, subscriptions {subs}, {streams} streams, {bodies} bodies and {heads} half heads sent, "
    f"{still_open} connections held; RSS +{(peak-base)//1024} MiB at peak, +{(rss(p)-base)//1024} MiB after letting go")
stop(p)
