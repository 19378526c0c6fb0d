// The stateful-era resumption test, shared by TypeScript SDK v1 and v2 (their
// StreamableHTTPClientTransport has the same `onresumptiontoken` / `resumptionToken`
// request options; only how a raw request and a notification handler are written
// differs, which the caller's `sdk` adapter supplies).
//
// Start test_long_progress (10 steps, 100 ms apart) with a progress token on client A,
// take its SSE event ids through `onresumptiontoken`, drop A's connection after three
// progress notifications, wait so more steps happen while nobody listens, then on
// client B (same session, no initialize) re-issue the request with
// `resumptionToken` = the last event id, which the SDK sends as GET + Last-Event-ID.
// Every missed progress notification and the final result must arrive, in order, none
// twice, and the call must not have been re-POSTed.
import { assert } from './harness.mjs';

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const STEPS = 10;

/**
 * sdk: {
 *   client: string                          (label for logs)
 *   newClient(): Client
 *   newTransport(url, opts): Transport       (opts may carry sessionId, fetch)
 *   onProgress(client, handler(params)): void
 *   callTool(client, params, requestOptions): Promise<CallToolResult>  (a raw tools/call request)
 * }
 */
export async function resumeAfterDrop(url, era, sdk) {
  const cleanup = [];
  try {
    await run(url, era, sdk, cleanup);
  } finally {
    for (const close of cleanup.reverse()) await close().catch(() => {});
  }
}

async function run(url, era, sdk, cleanup) {
  const progressToken = `resume-${process.pid}-${Date.now()}`;
  const params = {
    name: 'test_long_progress',
    arguments: { steps: STEPS, interval_ms: 100 },
    _meta: { progressToken },
  };

  // --- client A: start the call, read a few events, drop the connection ---------
  const a = sdk.newClient();
  const ta = sdk.newTransport(url, {});
  cleanup.push(() => a.close());
  await a.connect(ta);
  const sessionId = ta.sessionId;
  assert.ok(sessionId, 'no session id');
  const seenA = [];
  const tokensA = [];
  sdk.onProgress(a, (p) => { if (p.progressToken === progressToken) seenA.push(p.progress); });
  const callA = sdk.callTool(a, params, { onresumptiontoken: (t) => tokensA.push(t), timeout: 30000 })
    .then((res) => ({ res }), (err) => ({ err }));
  for (let i = 0; i < 100 && seenA.length < 3; i += 1) await sleep(20);
  assert.ok(seenA.length >= 3, `only ${seenA.length} progress notifications before the drop`);
  const lastEventId = tokensA[tokensA.length - 1];
  const seenBeforeDrop = [...seenA];
  await ta.close(); // aborts the POST's SSE response mid-stream
  const outcomeA = await callA;
  assert.ok(outcomeA.err, 'the dropped call should not have completed on client A');
  assert.ok(lastEventId, 'no SSE event id was delivered through onresumptiontoken');
  assert.match(lastEventId, /^.+-\d+$/, `event id ${lastEventId} is not <stream>-<seq>`);
  assert.ok(seenBeforeDrop.length < STEPS, 'all progress arrived before the drop; nothing to resume');
  console.error(`${sdk.client}: dropped after progress ${JSON.stringify(seenBeforeDrop)}, last event id ${lastEventId}, event ids ${JSON.stringify(tokensA)}`);

  // Let more steps happen while nobody is connected, so the resumed stream must
  // replay stored events, not only relay live ones.
  await sleep(350);

  // --- client B: same session, resume from the last event id ---------------------
  const wire = []; // what B puts on the wire
  const recordingFetch = (input, init = {}) => {
    const h = new Headers(init.headers);
    wire.push({ method: init.method ?? 'GET', lastEventId: h.get('last-event-id'), session: h.get('mcp-session-id'), body: init.body });
    return fetch(input, init);
  };
  const b = sdk.newClient();
  const tb = sdk.newTransport(url, { sessionId, fetch: recordingFetch });
  cleanup.push(() => b.close());
  await b.connect(tb); // a transport that already has a session id skips initialize
  tb.setProtocolVersion?.(era);
  const events = []; // progress values and the final result, in arrival order
  sdk.onProgress(b, (p) => { if (p.progressToken === progressToken) events.push(p.progress); });
  const result = await sdk.callTool(b, params, { resumptionToken: lastEventId, timeout: 30000 });
  events.push('result');
  console.error(`${sdk.client}: after resuming: ${JSON.stringify(events)}; wire ${JSON.stringify(wire)}`);

  assert.deepEqual(result.content, [{ type: 'text', text: `completed ${STEPS} steps` }], `final result ${JSON.stringify(result)}`);
  const k = seenBeforeDrop.length;
  assert.deepEqual(seenBeforeDrop, Array.from({ length: k }, (_, i) => i + 1), 'progress before the drop');
  const missed = Array.from({ length: STEPS - k }, (_, i) => k + 1 + i);
  assert.deepEqual(events, [...missed, 'result'],
    `after resuming expected progress ${JSON.stringify(missed)} then the result, got ${JSON.stringify(events)}`);
  const resumes = wire.filter((w) => w.method === 'GET' && w.lastEventId !== null);
  assert.equal(resumes.length, 1, `expected one GET with Last-Event-ID, saw ${JSON.stringify(wire)}`);
  assert.equal(resumes[0].lastEventId, lastEventId, 'Last-Event-ID sent');
  assert.equal(resumes[0].session, sessionId, 'Mcp-Session-Id on the resuming GET');
  assert.ok(!wire.some((w) => w.method === 'POST' && String(w.body).includes('tools/call')), 'the call was re-POSTed instead of resumed');
  try { await tb.terminateSession(); } catch (err) { console.error(`${sdk.client}: DELETE failed: ${err}`); }
}
