// The official MCP TypeScript SDK v1 (`@modelcontextprotocol/sdk`) against a running
// QuDAG MCP server: usage `node sdk-v1.mjs URL`.
//
// SDK v1 only speaks the stateful (initialize) era and always offers its
// LATEST_PROTOCOL_VERSION, 2025-11-25. Besides the basic checks it resumes a dropped
// SSE stream with Last-Event-ID through the SDK's `onresumptiontoken` /
// `resumptionToken` request options (lib/resume.mjs).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  LATEST_PROTOCOL_VERSION,
  ProgressNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import {
  assert, assertEcho, assertPrompt, assertStaticText, assertTools, listAll, reporter, serverUrl,
} from './lib/harness.mjs';
import { resumeAfterDrop } from './lib/resume.mjs';

const CLIENT = 'ts-sdk-v1';
const url = new URL(serverUrl());
const r = reporter(CLIENT);
const info = { name: 'qudag-client-tests-ts-sdk-v1', version: '0.0.0' };

async function basicChecks() {
  const era = LATEST_PROTOCOL_VERSION; // 2025-11-25 in 1.32.x
  const client = new Client(info);
  const transport = new StreamableHTTPClientTransport(url);
  let connected = false;
  await r.check(era, 'connect', async () => {
    await client.connect(transport);
    connected = true;
    assert.equal(transport.protocolVersion, era, 'negotiated protocol version');
    assert.equal(client.getServerVersion()?.name, 'qudag-mcp', 'serverInfo.name');
    assert.ok(transport.sessionId, 'no Mcp-Session-Id on a stateful session');
    assert.ok(client.getServerCapabilities()?.tools, 'server did not advertise tools');
  });
  if (!connected) {
    r.notRun(era, ['tools/list', 'tools/call', 'resources/read', 'prompts/get'], 'connect failed');
    await client.close().catch(() => {});
    return;
  }
  await r.check(era, 'tools/list', async () => {
    assertTools(await listAll(async (cursor) => {
      const res = await client.listTools(cursor ? { cursor } : undefined);
      return { items: res.tools, nextCursor: res.nextCursor };
    }));
  });
  await r.check(era, 'tools/call', async () => {
    assertEcho(await client.callTool({ name: 'echo', arguments: { text: 'hello' } }));
  });
  await r.check(era, 'resources/read', async () => {
    assertStaticText(await client.readResource({ uri: 'test://static-text' }));
  });
  await r.check(era, 'prompts/get', async () => {
    assertPrompt(
      await client.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'alpha-ts1', arg2: 'beta-ts1' } }),
      'alpha-ts1', 'beta-ts1',
    );
  });
  try {
    await transport.terminateSession();
  } catch (err) {
    console.error(`${CLIENT}: DELETE of the session failed: ${err}`);
  }
  await client.close();
}

await basicChecks();
await r.check(LATEST_PROTOCOL_VERSION, 'resume-after-drop (Last-Event-ID)', () => resumeAfterDrop(url, LATEST_PROTOCOL_VERSION, {
  client: CLIENT,
  newClient: () => new Client(info),
  newTransport: (u, opts) => new StreamableHTTPClientTransport(u, opts),
  onProgress: (client, handler) => client.setNotificationHandler(ProgressNotificationSchema, (n) => handler(n.params)),
  callTool: (client, params, options) => client.request({ method: 'tools/call', params }, CallToolResultSchema, options),
}), 40000);
r.finish();
