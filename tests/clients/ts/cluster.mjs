// The official MCP TypeScript SDK v2 client (`@modelcontextprotocol/client`) against a
// cluster of QuDAG MCP servers sharing Redis, behind nginx:
// usage `node cluster.mjs EDGE NODE1 NODE2 NODE3` (the /mcp URLs of nginx and of each node).
//
// Driven by bootstrap/tests/multi_process.rs, which starts the nodes and nginx (their rate
// limit in CLUSTER_RATE_PER_MINUTE and CLUSTER_RATE_BURST). Every check
// prints `PASS <name>` or `FAIL <name>: <why>` on stdout. To have node 1 killed mid-stream
// the script prints `KILL 1` and waits for a line on stdin. At the end it prints
// `COUNT tool.called N` and `COUNT session.created M`: the audit events its successful
// calls and sessions must have left (the test compares them with PostgreSQL).
import readline from 'node:readline';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { assert, reporter } from './lib/harness.mjs';

const [edge, node1, node2, node3] = process.argv.slice(2).map((u) => new URL(u));
if (!node3) {
  console.error(`usage: node ${process.argv[1]} EDGE NODE1 NODE2 NODE3`);
  process.exit(2);
}
const r = reporter('ts-client-v2 cluster');
const STATEFUL = '2025-11-25';
const STATELESS = '2026-07-28';
const info = { name: 'qudag-client-tests-cluster', version: '0.0.0' };
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const counts = { toolCalls: 0, sessions: 0 };
const clients = [];

function stateful(capabilities = {}) {
  const client = new Client(info, { versionNegotiation: { mode: 'legacy' }, capabilities });
  clients.push(client);
  return client;
}

function stateless() {
  const client = new Client(info, { versionNegotiation: { mode: { pin: STATELESS } } });
  clients.push(client);
  return client;
}

/** A fetch that records what it sends and the status it gets, and may send it elsewhere. */
function wiretap(route = () => undefined) {
  const wire = [];
  const tap = async (input, init = {}) => {
    const to = route(new URL(String(input)), init) ?? new URL(String(input));
    const h = new Headers(init.headers);
    const entry = {
      http: init.method ?? 'GET', host: to.host, session: h.get('mcp-session-id'),
      lastEventId: h.get('last-event-id'), body: typeof init.body === 'string' ? init.body : undefined,
    };
    wire.push(entry);
    const res = await fetch(to, init);
    entry.status = res.status;
    return res;
  };
  return { wire, fetch: tap };
}

/** `url` with the host (and port) of `node`. */
const on = (url, node) => Object.assign(new URL(url), { host: node.host });

async function callTool(client, name, args, options) {
  const result = await client.callTool({ name, arguments: args }, options);
  counts.toolCalls += 1;
  return result;
}

function text(result) {
  assert.equal(result.isError ?? false, false, `tool error: ${JSON.stringify(result)}`);
  return result.content.map((c) => c.text).join('');
}

async function waitFor(what, done, ms = 5000) {
  for (let waited = 0; !done(); waited += 25) {
    if (waited > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// 1. A session made on node 1 serves on nodes 2 and 3; deleted on node 2, node 3 answers 404.
await r.check(STATEFUL, 'session made on node 1 serves on nodes 2 and 3; deleted on node 2 it is 404 on node 3', async () => {
  const a = stateful();
  const ta = new StreamableHTTPClientTransport(node1);
  await a.connect(ta);
  counts.sessions += 1;
  const sessionId = ta.sessionId;
  assert.ok(sessionId, 'no Mcp-Session-Id');
  const b = stateful();
  const tb = new StreamableHTTPClientTransport(node2, { sessionId });
  await b.connect(tb);
  tb.setProtocolVersion?.(STATEFUL);
  assert.equal(text(await callTool(b, 'echo', { text: 'on node 2' })), 'on node 2');
  const tapC = wiretap();
  const c = stateful();
  const tc = new StreamableHTTPClientTransport(node3, { sessionId, fetch: tapC.fetch });
  await c.connect(tc);
  tc.setProtocolVersion?.(STATEFUL);
  assert.equal(text(await callTool(c, 'echo', { text: 'on node 3' })), 'on node 3');
  await tb.terminateSession();
  assert.equal(tb.sessionId, undefined, 'the SDK forgot the terminated session');
  let refused;
  try {
    await c.callTool({ name: 'echo', arguments: { text: 'after delete' } });
  } catch (err) {
    refused = err;
  }
  assert.ok(refused, 'node 3 served a deleted session');
  const last = tapC.wire[tapC.wire.length - 1];
  assert.equal(last.status, 404, `node 3 answered ${last.status}: ${refused}`);
  assert.equal(last.session, sessionId);
});

// 2. A change raised on node 1 reaches a GET stream held on node 2 (stateful) and a
//    `subscriptions/listen` stream held on node 3 (stateless).
await r.check(STATEFUL, 'a change raised on node 1 reaches the GET stream on node 2 and the listen stream on node 3', async () => {
  const tap = wiretap((url, init) => ((init.method ?? 'GET') === 'GET' ? on(url, node2) : undefined));
  const d = stateful();
  const onGet = [];
  d.setNotificationHandler('notifications/tools/list_changed', (n) => onGet.push(n));
  await d.connect(new StreamableHTTPClientTransport(node1, { fetch: tap.fetch }));
  counts.sessions += 1;
  await waitFor('the SDK to open its GET stream', () => tap.wire.some((w) => w.http === 'GET' && w.status === 200));
  assert.ok(tap.wire.filter((w) => w.http === 'GET').every((w) => w.host === node2.host), 'the GET stream is on node 2');
  assert.ok(tap.wire.filter((w) => w.http === 'POST').every((w) => w.host === node1.host), 'requests go to node 1');

  const l = stateless();
  const onListen = [];
  l.setNotificationHandler('notifications/tools/list_changed', (n) => onListen.push(n));
  await l.connect(new StreamableHTTPClientTransport(node3));
  const subscription = await l.listen({ toolsListChanged: true });
  assert.equal(subscription.honoredFilter.toolsListChanged, true, `honored ${JSON.stringify(subscription.honoredFilter)}`);

  const trigger = stateless();
  await trigger.connect(new StreamableHTTPClientTransport(node1));
  await callTool(trigger, 'test_trigger_tool_change', {});
  await waitFor('the change on node 2\'s GET stream', () => onGet.length > 0);
  await waitFor('the change on node 3\'s listen stream', () => onListen.length > 0);
  await subscription.close();
});

// 3. A call on node 1 asks the client for sampling; the client's answer is posted to node 2
//    and the call completes on node 1.
await r.check(STATEFUL, 'a sampling request from node 1 is answered through node 2', async () => {
  const isResponse = (init) => {
    try {
      const m = JSON.parse(init.body);
      return m.method === undefined && ('result' in m || 'error' in m);
    } catch {
      return false;
    }
  };
  const tap = wiretap((url, init) => (init.method === 'POST' && isResponse(init) ? on(url, node2) : undefined));
  const s = stateful({ sampling: {} });
  let asked = 0;
  s.setRequestHandler('sampling/createMessage', async () => {
    asked += 1;
    return { role: 'assistant', content: { type: 'text', text: 'hi there' }, model: 'cluster-test', stopReason: 'endTurn' };
  });
  await s.connect(new StreamableHTTPClientTransport(node1, { fetch: tap.fetch }));
  counts.sessions += 1;
  const result = await callTool(s, 'test_sampling', { prompt: 'Say hi' });
  assert.equal(text(result), 'LLM response: hi there');
  assert.equal(asked, 1, 'the server asked once');
  const answers = tap.wire.filter((w) => w.http === 'POST' && w.body && isResponse({ body: w.body }));
  assert.equal(answers.length, 1, `one answer posted: ${JSON.stringify(tap.wire)}`);
  assert.equal(answers[0].host, node2.host, 'the answer went to node 2');
  assert.equal(answers[0].status, 202, 'node 2 accepted the answer');
  const call = tap.wire.find((w) => w.body?.includes('"tools/call"'));
  assert.equal(call.host, node1.host, 'the call ran on node 1');
});

// 4. Node 1 is killed while it streams a long call's progress; the client resumes with
//    Last-Event-ID through nginx, lands on a live node and gets every missed event once.
await r.check(STATEFUL, 'node 1 killed mid-stream: resumed through nginx, every missed event once, in order', async () => {
  const k = stateful();
  const tk = new StreamableHTTPClientTransport(edge);
  await k.connect(tk); // initialize through nginx, on whichever node it picks
  counts.sessions += 1;
  const sessionId = tk.sessionId;
  const progressToken = `cluster-${process.pid}`;
  const params = { name: 'test_long_progress', arguments: { steps: 200, interval_ms: 50 }, _meta: { progressToken } };

  // The call runs on node 1.
  const w = stateful();
  const tw = new StreamableHTTPClientTransport(node1, { sessionId });
  await w.connect(tw);
  tw.setProtocolVersion?.(STATEFUL);
  const before = [];
  const tokens = [];
  w.setNotificationHandler('notifications/progress', (n) => { if (n.params.progressToken === progressToken) before.push(n.params.progress); });
  const running = w.request({ method: 'tools/call', params }, { onresumptiontoken: (t) => tokens.push(t), timeout: 60000 })
    .then(() => 'completed', () => 'dropped');
  await waitFor('three progress notifications', () => before.length >= 3);
  const lastEventId = tokens[tokens.length - 1];
  const seenBeforeDrop = [...before];
  await tw.close(); // the client's connection drops
  assert.equal(await running, 'dropped');
  // Node 1 goes on storing progress while nobody listens, then dies.
  await sleep(600);
  process.stdout.write('KILL 1\n');
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() === 'killed') break;
  lines.close();

  const tap = wiretap();
  const z = stateful();
  const tz = new StreamableHTTPClientTransport(edge, { sessionId, fetch: tap.fetch });
  await z.connect(tz);
  tz.setProtocolVersion?.(STATEFUL);
  const after = [];
  z.setNotificationHandler('notifications/progress', (n) => { if (n.params.progressToken === progressToken) after.push(n.params.progress); });
  // The call died with node 1: its result never comes; read what was stored, until quiet.
  const resumed = z.request({ method: 'tools/call', params }, { resumptionToken: lastEventId, timeout: 60000 }).catch(() => {});
  let seen = -1;
  for (let quiet = 0; quiet < 1500; quiet += 100) {
    if (after.length !== seen) { seen = after.length; quiet = 0; }
    await sleep(100);
  }
  await tz.close();
  await resumed;
  const n = seenBeforeDrop.length;
  assert.deepEqual(seenBeforeDrop, Array.from({ length: n }, (_, i) => i + 1), 'progress before the drop');
  assert.ok(after.length >= 5, `node 1 stored more before it died: ${JSON.stringify(after)}`);
  assert.deepEqual(after, Array.from({ length: after.length }, (_, i) => n + 1 + i), 'every missed event, in order, none twice');
  const resumes = tap.wire.filter((x) => x.http === 'GET' && x.lastEventId !== null);
  assert.equal(resumes.length, 1, `one GET with Last-Event-ID: ${JSON.stringify(tap.wire)}`);
  assert.equal(resumes[0].lastEventId, lastEventId);
  assert.equal(resumes[0].status, 200, 'a live node behind nginx resumed the stream');
  assert.ok(!tap.wire.some((x) => x.http === 'POST' && x.body?.includes('"tools/call"')), 'the call was re-POSTed instead of resumed');
}, 60000);

// 5. Every node still serves (the live ones, through nginx too).
await r.check(STATELESS, 'the surviving nodes and nginx serve stateless calls', async () => {
  for (const url of [node2, node3, edge]) {
    const c = stateless();
    await c.connect(new StreamableHTTPClientTransport(url));
    assert.equal(text(await callTool(c, 'echo', { text: url.host })), url.host);
  }
});

// 6. One rate limit across the nodes: a caller (10.9.9.9, as nginx and the trusted
//    X-Forwarded-For name it) gets the burst and what refills meanwhile, wherever its
//    requests land; three separate limiters would admit three times as many.
await r.check(STATELESS, 'one rate limit across the nodes, through nginx and node by node', async () => {
  const burst = Number(process.env.CLUSTER_RATE_BURST);
  const perMinute = Number(process.env.CLUSTER_RATE_PER_MINUTE);
  assert.ok(burst > 0 && perMinute > 0, 'CLUSTER_RATE_BURST and CLUSTER_RATE_PER_MINUTE name the nodes\' limit');
  const statuses = [];
  const caller = async (input, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('x-forwarded-for', '10.9.9.9');
    const res = await fetch(input, { ...init, headers });
    statuses.push(res.status);
    return res;
  };
  const started = Date.now();
  const routes = [];
  for (const url of [node2, node3, edge]) {
    const c = stateless();
    await c.connect(new StreamableHTTPClientTransport(url, { fetch: caller }));
    routes.push(c);
  }
  for (let i = 0; i < burst + 60; i += 1) {
    await callTool(routes[i % routes.length], 'echo', { text: 'x' }).catch(() => {});
  }
  const elapsed = (Date.now() - started) / 1000;
  const admitted = statuses.filter((s) => s === 200).length;
  const refused = statuses.filter((s) => s === 429).length;
  assert.equal(admitted + refused, statuses.length, `statuses other than 200 and 429: ${JSON.stringify(statuses)}`);
  const refilled = Math.ceil((elapsed * perMinute) / 60) + 1;
  assert.ok(admitted >= burst && admitted <= burst + refilled,
    `admitted ${admitted} of ${statuses.length} in ${elapsed}s; one limit admits ${burst} to ${burst + refilled}`);
});

for (const c of clients) await c.close().catch(() => {});
process.stdout.write(`COUNT tool.called ${counts.toolCalls}\n`);
process.stdout.write(`COUNT session.created ${counts.sessions}\n`);
r.finish();
