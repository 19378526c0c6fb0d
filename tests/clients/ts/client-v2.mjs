// The official MCP TypeScript SDK v2 client (`@modelcontextprotocol/client`, the
// successor of `@modelcontextprotocol/sdk`) against a running QuDAG MCP server:
// usage `node client-v2.mjs URL`.
//
// v2 speaks both eras: `versionNegotiation` 'legacy' (the default) runs the
// initialize handshake (offering 2025-11-25, or the first 2025-era entry of
// `supportedProtocolVersions`), and `{ pin: '2026-07-28' }` runs
// `server/discover` and then sends stateless requests with the per-request `_meta`
// envelope and the MCP-Protocol-Version / Mcp-Method / Mcp-Name headers. It also
// runs the stateful-era resumption test (lib/resume.mjs).
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import {
  assert, assertEcho, assertPrompt, assertStaticText, assertTools, listAll, reporter, serverUrl,
} from './lib/harness.mjs';
import { resumeAfterDrop } from './lib/resume.mjs';

const CLIENT = 'ts-client-v2';
const url = new URL(serverUrl());
const r = reporter(CLIENT);

// `supportedProtocolVersions` makes the legacy handshake offer its first entry, so
// every stateful revision can be asked for.
const ERAS = [
  { era: '2025-03-26', options: { versionNegotiation: { mode: 'legacy' }, supportedProtocolVersions: ['2025-03-26'] }, stateful: true },
  { era: '2025-06-18', options: { versionNegotiation: { mode: 'legacy' }, supportedProtocolVersions: ['2025-06-18'] }, stateful: true },
  { era: '2025-11-25', options: { versionNegotiation: { mode: 'legacy' } }, stateful: true },
  { era: '2026-07-28', options: { versionNegotiation: { mode: { pin: '2026-07-28' } } }, stateful: false },
];

for (const { era, options, stateful } of ERAS) {
  // Record the requests the SDK makes, to check the era really is the one asked for.
  const wire = [];
  const recordingFetch = (input, init = {}) => {
    const h = new Headers(init.headers);
    let method;
    try { method = JSON.parse(init.body).method; } catch { method = undefined; }
    wire.push({ http: init.method ?? 'GET', rpc: method, session: h.get('mcp-session-id'), version: h.get('mcp-protocol-version'), mcpMethod: h.get('mcp-method') });
    return fetch(input, init);
  };
  const client = new Client({ name: 'qudag-client-tests-ts-client-v2', version: '0.0.0' }, options);
  const transport = new StreamableHTTPClientTransport(url, { fetch: recordingFetch });
  let connected = false;
  await r.check(era, 'connect', async () => {
    await client.connect(transport);
    connected = true;
    assert.equal(client.getNegotiatedProtocolVersion(), era, 'negotiated protocol version');
    assert.ok(client.getServerCapabilities()?.tools, 'server did not advertise tools');
    const rpc = wire.map((w) => w.rpc).filter(Boolean);
    if (stateful) {
      assert.equal(client.getServerVersion()?.name, 'qudag-mcp', 'serverInfo.name');
      assert.ok(transport.sessionId, 'no Mcp-Session-Id on a stateful session');
      assert.equal(rpc[0], 'initialize', `first request ${rpc[0]}`);
    } else {
      assert.equal(transport.sessionId, undefined, 'a stateless connection got a session id');
      assert.ok(!rpc.includes('initialize'), `sent initialize in the stateless era: ${JSON.stringify(rpc)}`);
      assert.ok(rpc.includes('server/discover'), `no server/discover: ${JSON.stringify(rpc)}`);
    }
  });
  if (!connected) {
    r.notRun(era, ['tools/list', 'tools/call', 'resources/read', 'prompts/get'], 'connect failed');
    await client.close().catch(() => {});
    continue;
  }
  await r.check(era, 'tools/list', async () => {
    assertTools(await listAll(async (cursor) => {
      const res = await client.listTools(cursor ? { cursor } : undefined);
      return { items: res.tools, nextCursor: res.nextCursor };
    }));
  });
  await r.check(era, 'tools/call', async () => {
    assertEcho(await client.callTool({ name: 'echo', arguments: { text: 'hello' } }));
    if (!stateful) {
      const call = wire.findLast((w) => w.rpc === 'tools/call');
      assert.equal(call?.version, era, 'MCP-Protocol-Version header on tools/call');
      assert.equal(call?.mcpMethod, 'tools/call', 'Mcp-Method header on tools/call');
      assert.ok(wire.every((w) => !w.session), 'a stateless request carried Mcp-Session-Id');
    }
  });
  await r.check(era, 'resources/read', async () => {
    assertStaticText(await client.readResource({ uri: 'test://static-text' }));
  });
  await r.check(era, 'prompts/get', async () => {
    assertPrompt(
      await client.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'alpha-ts2', arg2: 'beta-ts2' } }),
      'alpha-ts2', 'beta-ts2',
    );
  });
  if (stateful) {
    try { await transport.terminateSession(); } catch (err) { console.error(`${CLIENT}: DELETE failed: ${err}`); }
  }
  await client.close();
}
// The stateful-era resumption test (lib/resume.mjs) with v2's request API.
await r.check('2025-11-25', 'resume-after-drop (Last-Event-ID)', () => resumeAfterDrop(url, '2025-11-25', {
  client: CLIENT,
  newClient: () => new Client({ name: 'qudag-client-tests-ts-client-v2', version: '0.0.0' }),
  newTransport: (u, opts) => new StreamableHTTPClientTransport(u, opts),
  onProgress: (client, handler) => client.setNotificationHandler('notifications/progress', (n) => handler(n.params)),
  callTool: (client, params, options) => client.request({ method: 'tools/call', params }, options),
}), 40000);
r.finish();
