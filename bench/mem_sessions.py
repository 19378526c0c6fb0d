#!/usr/bin/env python3
"""Memory per idle stateful MCP session and per open GET SSE stream.

usage: mem_sessions.py --url http://127.0.0.1:PORT/mcp --pid SERVER_PID [options]

Against a running Streamable HTTP server (2025-11-25 stateful era), on loopback only:
  1. reads the server's VmRSS from /proc/PID/status (baseline);
  2. creates N sessions (POST initialize -> Mcp-Session-Id, then POST
     notifications/initialized with that id) over a small pool of keep-alive
     connections, closes the pool, reads VmRSS again -> bytes per idle session;
  3. opens one GET /mcp SSE stream per session (Accept: text/event-stream,
     Mcp-Session-Id, MCP-Protocol-Version: 2025-11-25), all N held open at once,
     reads VmRSS -> bytes per open stream (the connection included);
  4. closes every stream, waits (at most --release-timeout) until the server's count of
     open descriptors is back to where it was before the streams, and reads VmRSS again.

Prints one line on stdout:
  mem server=NAME sessions=N streams=M ... per_session_b=... per_stream_b=... errors=E
Progress and problems go to stderr. Python 3 stdlib only (asyncio, raw HTTP/1.1).
Everything is bounded: each connect/request has --timeout, each phase and the whole
run have deadlines (--deadline), so the script always ends by itself.
Exit status: 0 when every session and stream was made, 1 otherwise (the line is
still printed with what was measured), 2 for bad arguments.
"""
import argparse
import asyncio
import collections
import json
import os
import re
import resource
import sys
import time
import urllib.parse

PV = "2025-11-25"


def log(msg):
    print(f"mem_sessions: {msg}", file=sys.stderr, flush=True)


def count_fds(pid):
    """Open file descriptors of PID (sockets included), -1 when unreadable."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon of PID in kB (missing keys are absent)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class HttpError(Exception):
    pass


class Conn:
    """One HTTP/1.1 keep-alive connection: requests in series, raw bytes."""

    def __init__(self, host, port, path, timeout):
        self.host, self.port, self.path, self.timeout = host, port, path, timeout
        self.r = self.w = None
        self.reusable = False

    async def open(self):
        self.r, self.w = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout)
        self.reusable = True

    def close(self):
        self.reusable = False
        if self.w is not None:
            try:
                self.w.close()
            except Exception:
                pass
        self.r = self.w = None

    def _head(self, method, headers, body_len=None):
        lines = [f"{method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += headers
        if body_len is not None:
            lines.append(f"Content-Length: {body_len}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def read_head(self):
        raw = await self.r.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        if hdrs.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self.reusable = False
        return status, hdrs

    async def read_body(self, hdrs):
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            return await self.r.readexactly(n) if n else b""
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size_line = await self.r.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (await self.r.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(await self.r.readexactly(size))
                await self.r.readexactly(2)
        self.reusable = False  # body delimited by close
        return await self.r.read()

    async def post(self, body, headers):
        async def go():
            self.w.write(self._head("POST", [
                "Content-Type: application/json",
                "Accept: application/json, text/event-stream",
            ] + headers, len(body)) + body)
            await self.w.drain()
            status, hdrs = await self.read_head()
            return status, hdrs, await self.read_body(hdrs)
        return await asyncio.wait_for(go(), self.timeout)


def init_body(i):
    return json.dumps({
        "jsonrpc": "2.0", "id": i, "method": "initialize",
        "params": {"protocolVersion": PV, "capabilities": {},
                   "clientInfo": {"name": "mem-bench", "version": "1.0.0"}},
    }, separators=(",", ":")).encode()


INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
PV_RE = re.compile(rb'"protocolVersion"\s*:\s*"([^"]+)"')


async def create_sessions(a, n, deadline):
    """N sessions over a.workers keep-alive connections. Returns ([(id, pv)], errors)."""
    sessions = []
    errors = collections.Counter()
    max_errors = max(50, n // 20)
    state = {"claimed": 0}

    async def worker(w):
        conn = Conn(a.host, a.port, a.path, a.timeout)
        try:
            while (state["claimed"] < n and sum(errors.values()) < max_errors
                   and time.monotonic() < deadline):
                state["claimed"] += 1
                try:
                    if not conn.reusable:
                        conn.close()
                        await conn.open()
                    st, h, b = await conn.post(init_body(state["claimed"]), [])
                    sid = h.get("mcp-session-id")
                    if st != 200 or b'"result"' not in b or not sid:
                        errors[f"initialize HTTP {st}{'' if sid else ' no-session-id'}"] += 1
                        if len(errors) == 1 and sum(errors.values()) == 1:
                            log(f"first initialize failure: HTTP {st}: {b[:300]!r}")
                        state["claimed"] -= 1
                        continue
                    m = PV_RE.search(b)
                    pv = m.group(1).decode() if m else PV
                    if not conn.reusable:
                        conn.close()
                        await conn.open()
                    st, h, b = await conn.post(INITIALIZED, [
                        f"Mcp-Session-Id: {sid}", f"MCP-Protocol-Version: {pv}"])
                    if not 200 <= st < 300:
                        errors[f"notifications/initialized HTTP {st}"] += 1
                        state["claimed"] -= 1
                        continue
                    sessions.append((sid, pv))
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                        asyncio.LimitOverrunError, HttpError, ValueError) as e:
                    errors[type(e).__name__] += 1
                    state["claimed"] -= 1
                    conn.close()
        finally:
            conn.close()

    await asyncio.gather(*(worker(w) for w in range(a.workers)))
    return sessions, errors


class Streams:
    """N GET SSE streams held open at once; each drained by a task that notes EOF."""

    def __init__(self, a):
        self.a = a
        self.conns = []
        self.tasks = []
        self.errors = collections.Counter()
        self.closed_early = 0

    async def open_one(self, sid, pv, sem, deadline):
        a = self.a
        async with sem:
            if time.monotonic() >= deadline:
                self.errors["deadline"] += 1
                return
            conn = Conn(a.host, a.port, a.path, a.timeout)
            try:
                await conn.open()
                conn.w.write(conn._head("GET", [
                    "Accept: text/event-stream",
                    f"Mcp-Session-Id: {sid}",
                    f"MCP-Protocol-Version: {pv}",
                ]))
                await conn.w.drain()
                st, h = await asyncio.wait_for(conn.read_head(), a.timeout)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, HttpError, ValueError) as e:
                self.errors[type(e).__name__] += 1
                conn.close()
                return
            ct = h.get("content-type", "")
            if st != 200 or not ct.startswith("text/event-stream"):
                body = b""
                try:
                    body = await asyncio.wait_for(conn.r.read(300), 1)
                except Exception:
                    pass
                self.errors[f"GET HTTP {st} {ct}".strip()] += 1
                if sum(self.errors.values()) == 1:
                    log(f"first GET failure: HTTP {st} {ct}: {body!r}")
                conn.close()
                return
            self.conns.append(conn)
            self.tasks.append(asyncio.ensure_future(self.drain(conn)))

    async def drain(self, conn):
        try:
            while True:
                if not await conn.r.read(65536):
                    self.closed_early += 1
                    return
        except (OSError, asyncio.IncompleteReadError):
            self.closed_early += 1

    async def close_all(self):
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in self.conns:
            c.close()
        await asyncio.sleep(0)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError) as e:
            log(f"could not raise RLIMIT_NOFILE to {want}: {e}")
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def main(a):
    t_start = time.monotonic()
    end = t_start + a.deadline
    res = collections.OrderedDict(server=a.name, sessions_wanted=a.sessions)
    err_total = 0

    nofile = raise_nofile(a.sessions + a.workers + 256)
    n_streams = a.sessions
    if nofile != resource.RLIM_INFINITY and nofile < a.sessions + 128:
        n_streams = max(0, nofile - 128)
        log(f"open-file limit {nofile}: only {n_streams} streams can be held open")

    await asyncio.sleep(a.settle)
    base = proc_status(a.pid)
    if "VmRSS" not in base:
        log(f"cannot read /proc/{a.pid}/status")
        return 2, res
    res["rss_base_kb"] = base["VmRSS"]
    res["fds_base"] = count_fds(a.pid)
    log(f"{a.name}: baseline VmRSS {base['VmRSS']} kB; creating {a.sessions} sessions "
        f"({a.workers} connections)")

    # ---- idle sessions
    t0 = time.monotonic()
    sessions, serr = await create_sessions(a, a.sessions, min(end, t0 + a.phase_timeout))
    res["t_sessions_s"] = round(time.monotonic() - t0, 2)
    res["sessions"] = len(sessions)
    if serr:
        log(f"session errors: {dict(serr)}")
    err_total += sum(serr.values())
    await asyncio.sleep(a.settle)
    st = proc_status(a.pid)
    res["rss_sessions_kb"] = st.get("VmRSS", 0)
    fds_sessions = res["fds_sessions"] = count_fds(a.pid)
    if sessions:
        res["per_session_b"] = round((res["rss_sessions_kb"] - res["rss_base_kb"]) * 1024 / len(sessions))
    log(f"{a.name}: {len(sessions)} sessions in {res['t_sessions_s']} s; VmRSS {res['rss_sessions_kb']} kB"
        + (f" -> {res['per_session_b']} B/session" if sessions else ""))

    # ---- open GET streams, one per session, all held at once
    streams = Streams(a)
    todo = sessions[:n_streams]
    t0 = time.monotonic()
    sem = asyncio.Semaphore(a.open_concurrency)
    phase_end = min(end, t0 + a.phase_timeout)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(streams.open_one(sid, pv, sem, phase_end) for sid, pv in todo)),
            max(1.0, phase_end - time.monotonic() + a.timeout))
    except asyncio.TimeoutError:
        streams.errors["phase timeout"] += 1
    res["t_streams_s"] = round(time.monotonic() - t0, 2)
    res["streams"] = len(streams.conns)
    if streams.errors:
        log(f"stream errors: {dict(streams.errors)}")
    err_total += sum(streams.errors.values())
    await asyncio.sleep(a.settle)
    st = proc_status(a.pid)
    res["rss_streams_kb"] = st.get("VmRSS", 0)
    res["fds_streams"] = count_fds(a.pid)
    res["streams_open"] = len(streams.conns) - streams.closed_early
    if streams.conns:
        res["per_stream_b"] = round((res["rss_streams_kb"] - res["rss_sessions_kb"]) * 1024 / len(streams.conns))
    log(f"{a.name}: {len(streams.conns)} streams opened in {res['t_streams_s']} s, "
        f"{res['streams_open']} still open after {a.settle} s; VmRSS {res['rss_streams_kb']} kB"
        + (f" -> {res['per_stream_b']} B/stream" if streams.conns else ""))
    if a.hold > 0:
        await asyncio.sleep(min(a.hold, max(0.0, end - time.monotonic())))
        res["streams_open_after_hold"] = len(streams.conns) - streams.closed_early
    if streams.closed_early:
        log(f"{streams.closed_early} streams were closed by the server while held")
        err_total += streams.closed_early

    # ---- close everything, then wait (bounded) until the server has let go of the sockets
    await streams.close_all()
    t0 = time.monotonic()
    release_end = min(end, t0 + a.release_timeout)
    while True:
        fds = count_fds(a.pid)
        if fds < 0 or fds <= fds_sessions + 16 or time.monotonic() >= release_end:
            break
        await asyncio.sleep(0.25)
    released = 0 <= fds <= fds_sessions + 16
    if fds < 0:
        res["release_s"] = "server-gone"
        err_total += 1
        log(f"{a.name}: server process {a.pid} is gone")
    else:
        res["release_s"] = round(time.monotonic() - t0, 2) if released else f">{a.release_timeout:g}"
    res["fds_closed"] = fds
    if fds >= 0 and not released:
        log(f"{a.name}: server still holds {fds - fds_sessions} more descriptors than before the "
            f"streams {a.release_timeout:g} s after the client closed them")
    await asyncio.sleep(a.settle)
    st = proc_status(a.pid)
    res["rss_closed_kb"] = st.get("VmRSS", 0)
    res["hwm_kb"] = st.get("VmHWM", 0)
    res["errors"] = err_total
    res["elapsed_s"] = round(time.monotonic() - t_start, 2)
    ok = len(sessions) == a.sessions and len(streams.conns) == n_streams == a.sessions \
        and streams.closed_early == 0
    return (0 if ok else 1), res


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/mcp (loopback only)")
    p.add_argument("--pid", type=int, required=True, help="server process id (for /proc/PID/status)")
    p.add_argument("--name", default="server", help="label in the output line")
    p.add_argument("--sessions", "-n", type=int, default=10000)
    p.add_argument("--workers", type=int, default=32, help="keep-alive connections creating sessions")
    p.add_argument("--open-concurrency", type=int, default=128, help="GET streams being opened at once")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per connect / request")
    p.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each RSS reading")
    p.add_argument("--hold", type=float, default=0.0, help="extra seconds to hold the streams open")
    p.add_argument("--release-timeout", type=float, default=40.0,
                   help="seconds to wait for the server to close its side of the streams")
    p.add_argument("--phase-timeout", type=float, default=120.0, help="seconds at most per phase")
    p.add_argument("--deadline", type=float, default=300.0, help="seconds at most for the whole run")
    a = p.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if u.scheme != "http" or not u.hostname or not u.port:
        p.error("--url must be http://HOST:PORT/PATH")
    if not (u.hostname == "localhost" or u.hostname.startswith("127.") or u.hostname == "::1"):
        p.error("--url must be a loopback address")
    a.host, a.port, a.path = u.hostname, u.port, u.path or "/"
    if a.sessions < 1 or a.workers < 1 or a.open_concurrency < 1:
        p.error("--sessions, --workers and --open-concurrency must be at least 1")
    return a


if __name__ == "__main__":
    args = parse()
    try:
        code, result = asyncio.run(asyncio.wait_for(main(args), args.deadline + 30))
    except asyncio.TimeoutError:
        log(f"run exceeded --deadline {args.deadline} s")
        print(f"mem server={args.name} errors=deadline")
        sys.exit(1)
    print("mem " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    sys.exit(code)
