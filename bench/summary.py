#!/usr/bin/env python3
"""Summarise one bench/run.sh result directory: summary.py RUN_DIR > summary.txt

Reads meta.txt, compare-<era>.txt (compare.sh output) and mem-<server>.txt
(mem_sessions.py output) and prints the tables described in bench/README.md.
The last line is `status: ok` or `status: errors (...)`.
"""
import glob
import os
import re
import sys

LINE = re.compile(r"^(\S+)\s+era=(\S+)\s+c=(\d+)\s+rps=(\S+)\s+p50_ms=(\S+)\s+p99_ms=(\S+)\s+errors=(\S*)")
RATIO = re.compile(r"^ratio qudag/(\S+) c=(\d+): (\S+)")
PEAK = re.compile(r"^peak_rss (\S+) (\d+) kB")


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt(x, nd=1):
    return "n/a" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    a, b = num(a), num(b)
    return None if a is None or not b else a / b


def mib(kb):
    kb = num(kb)
    return None if kb is None else kb / 1024


def main(run):
    meta = {}
    with open(os.path.join(run, "meta.txt")) as f:
        for line in f:
            for part in line.split():
                k, _, v = part.partition("=")
                meta.setdefault(k, v)
    with open(os.path.join(run, "meta.txt")) as f:  # values with spaces (conc, eras, load)
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k in ("conc", "eras", "peers", "load"):
                meta[k] = v
    problems = []
    out = []
    p = out.append
    p(f"QuDAG MCP benchmark {meta.get('stamp', '?')}  git {meta.get('git', '?')}")
    mode = "QUICK (smoke test; do not quote these numbers)" if meta.get("quick") == "1" else "full"
    p(f"mode: {mode}; {meta.get('duration')} s per point, median of {meta.get('reps')} rep(s), "
      f"{meta.get('warmup')} s warm-up per server")
    p(f"machine: {meta.get('cpus')} CPUs, pinned (server CPU 0, load CPU 1): {meta.get('pinned')}; "
      f"load average at start: {meta.get('load')}; elapsed {meta.get('elapsed', '?')} s")

    # ---------------------------------------------------------------- throughput
    eras = meta.get("eras", "").split()
    rows, peaks = {}, {}
    servers = []
    have_tp = False
    for era in eras:
        path = os.path.join(run, f"compare-{era}.txt")
        if not os.path.exists(path):
            continue
        have_tp = True
        with open(path) as f:
            for line in f:
                m = LINE.match(line)
                if m:
                    name, _, c, rps, p50, p99, err = m.groups()
                    rows[(era, int(c), name)] = (rps, p50, p99, err)
                    if name not in servers:
                        servers.append(name)
                    errs = [e for e in err.split(",") if e]
                    if not errs or any(e != "0" for e in errs):
                        problems.append(f"{name} {era} c={c} errors={err or 'none reported'}")
                    continue
                m = PEAK.match(line)
                if m:
                    peaks[(era, m.group(1))] = int(m.group(2))
                    continue
                if line.startswith("compare.sh exit"):
                    problems.append(f"{era}: {line.strip()}")
    if have_tp:
        concs = sorted({k[1] for k in rows})
        p("")
        p("== Throughput / latency: tools/call echo, closed loop (wrk via compare.sh) ==")
        p(f"{'era':<10} {'conc':>4}  {'server':<11} {'rps':>10} {'p50_ms':>8} {'p99_ms':>8}  errors")
        for era in eras:
            for c in concs:
                for s in servers:
                    r = rows.get((era, c, s))
                    if r:
                        p(f"{era:<10} {c:>4}  {s:<11} {r[0]:>10} {r[1]:>8} {r[2]:>8}  {r[3]}")
                    elif any(k[0] == era for k in rows):
                        p(f"{era:<10} {c:>4}  {s:<11} {'missing':>10}")
                        problems.append(f"{s} {era} c={c}: no result")
        peers = [s for s in servers if s != "qudag"]
        if "qudag" in servers and peers:
            p("")
            p("== Ratios qudag/peer at each concurrency (rps: >1 means qudag is faster; "
              "p50/p99: <1 means qudag is faster) ==")
            head = f"{'era':<10} {'conc':>4}"
            for peer in peers:
                head += f"  {'rps/' + peer:>15}"
            if "rmcp" in peers:
                head += f"  {'p50/rmcp':>9} {'p99/rmcp':>9}"
            p(head)
            for era in eras:
                for c in concs:
                    q = rows.get((era, c, "qudag"))
                    if not q:
                        continue
                    line = f"{era:<10} {c:>4}"
                    for peer in peers:
                        r = rows.get((era, c, peer))
                        line += f"  {fmt(ratio(q[0], r[0]) if r else None, 2):>15}"
                    if "rmcp" in peers:
                        r = rows.get((era, c, "rmcp"))
                        line += f"  {fmt(ratio(q[1], r[1]) if r else None, 2):>9}"
                        line += f" {fmt(ratio(q[2], r[2]) if r else None, 2):>9}"
                    p(line)
        if peaks:
            p("")
            p("== Peak RSS during the throughput runs (VmHWM, MiB) ==")
            p(f"{'server':<11}" + "".join(f" {e:>10}" for e in eras))
            for s in servers:
                p(f"{s:<11}" + "".join(f" {fmt(mib(peaks.get((e, s))), 1):>10}" for e in eras))

    # ---------------------------------------------------------------- memory
    mem = {}
    for path in sorted(glob.glob(os.path.join(run, "mem-*.txt"))):
        name = os.path.basename(path)[4:-4]
        with open(path) as f:
            for line in f:
                if line.startswith("mem "):
                    mem[name] = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    if mem:
        n = meta.get("mem_sessions", "?")
        p("")
        p(f"== Memory: {n} idle stateful sessions, then one open GET SSE stream per session "
          f"(VmRSS deltas) ==")
        p(f"{'server':<7} {'sessions':>8} {'streams':>7} {'base_MiB':>8} {'+sess_MiB':>9} "
          f"{'+strm_MiB':>9} {'B/session':>9} {'B/stream':>9} {'peak_MiB':>8} {'released_s':>10}  errors")
        order = [s for s in ("qudag", "rmcp") if s in mem] + [s for s in mem if s not in ("qudag", "rmcp")]
        for s in order:
            m = mem[s]
            base, ses, stm = num(m.get("rss_base_kb")), num(m.get("rss_sessions_kb")), num(m.get("rss_streams_kb"))
            d_ses = None if base is None or ses is None else (ses - base) / 1024
            d_stm = None if ses is None or stm is None else (stm - ses) / 1024
            p(f"{s:<7} {m.get('sessions', '-'):>8} {m.get('streams', '-'):>7} {fmt(mib(base)):>8} "
              f"{fmt(d_ses):>9} {fmt(d_stm):>9} {m.get('per_session_b', 'n/a'):>9} "
              f"{m.get('per_stream_b', 'n/a'):>9} {fmt(mib(m.get('hwm_kb'))):>8} "
              f"{m.get('release_s', 'n/a'):>10}  {m.get('errors', '?')}")
            if m.get("errors") != "0":
                problems.append(f"memory {s}: errors={m.get('errors')}")
            for k in ("sessions", "streams"):
                if m.get(k) not in (None, str(n)) and n != "?":
                    problems.append(f"memory {s}: {k}={m.get(k)} of {n}")
            if m.get("streams_open") and m.get("streams") and m["streams_open"] != m["streams"]:
                problems.append(f"memory {s}: only {m['streams_open']} of {m['streams']} streams stayed open")
        if "qudag" in mem and "rmcp" in mem:
            q, r = mem["qudag"], mem["rmcp"]
            p(f"ratio qudag/rmcp: per idle session {fmt(ratio(q.get('per_session_b'), r.get('per_session_b')), 2)}, "
              f"per open stream {fmt(ratio(q.get('per_stream_b'), r.get('per_stream_b')), 2)} "
              f"(<1 means qudag uses less)")
        p("released_s: seconds until the server closed its side of the streams after the client "
          "closed them ('>N' = not within N s)")

    p("")
    if problems:
        p("problems:")
        for x in problems:
            p(f"  - {x}")
        p(f"status: errors ({len(problems)})")
    else:
        p("status: ok")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: summary.py RUN_DIR")
    main(sys.argv[1])
