// The MCP Inspector's CLI mode (`@modelcontextprotocol/inspector --cli`, http
// transport) against a running QuDAG MCP server: usage `node inspector-cli.mjs URL`.
//
// Each check runs the real `inspector --cli` command once (a fresh connection per
// invocation, as a CI job would use it) with `--format json` and asserts on the JSON
// it prints. `--protocol-era legacy` is the initialize handshake (2025-11-25),
// `--protocol-era modern` is the stateless 2026-07-28 era via server/discover.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  assert, assertEcho, assertPrompt, assertStaticText, assertTools, reporter, serverUrl,
} from './lib/harness.mjs';

const CLIENT = 'inspector-cli';
const url = serverUrl();
const r = reporter(CLIENT);
const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, 'node_modules', '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');

// Keep the Inspector's catalog, storage and OAuth state out of the real home directory.
const home = mkdtempSync(join(tmpdir(), 'qudag-inspector-'));
const env = {
  ...process.env,
  HOME: home,
  MCP_STORAGE_DIR: join(home, 'storage'),
  MCP_CATALOG_PATH: join(home, 'mcp.json'),
  MCP_CLIENT_CONFIG_PATH: join(home, 'client.json'),
  MCP_INSPECTOR_OAUTH_STATE_PATH: join(home, 'oauth.json'),
  MCP_AUTO_OPEN_ENABLED: 'false',
  NO_COLOR: '1',
};

function inspector(era, args) {
  const argv = [cli, '--cli', url, '--transport', 'http', '--protocol-era', era, '--format', 'json',
    '--stored-auth-only', '--connect-timeout', '10000', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (err.trim()) console.error(`${CLIENT} ${era} ${args.join(' ')}: stderr: ${err.trim()}`);
      if (code !== 0) {
        reject(new Error(`inspector ${args.join(' ')} exited ${code ?? signal}: ${(err || out).trim().slice(0, 500)}`));
        return;
      }
      let doc;
      try { doc = JSON.parse(out); } catch (e) {
        reject(new Error(`inspector printed no JSON (${e.message}): ${out.slice(0, 300)}`));
        return;
      }
      if (!doc || typeof doc !== 'object' || !('result' in doc)) {
        reject(new Error(`no result in ${out.slice(0, 300)}`));
        return;
      }
      resolve(doc.result);
    });
  });
}

const ERAS = [
  { cliEra: 'legacy', era: '2025-11-25' },
  { cliEra: 'modern', era: '2026-07-28' },
];

try {
  for (const { cliEra, era } of ERAS) {
    // Every check is its own `inspector --cli` run (its own connection), so none is
    // skipped when another fails.
    await r.check(era, 'connect', async () => {
      const res = await inspector(cliEra, ['--method', 'initialize']);
      assert.equal(res.protocolVersion, era, 'negotiated protocol version');
      // serverInfo is required in the initialize result, optional in server/discover.
      if (cliEra === 'legacy' || res.serverInfo !== undefined) {
        assert.equal(res.serverInfo?.name, 'qudag-mcp', 'serverInfo.name');
      }
      assert.ok(res.capabilities?.tools, 'server did not advertise tools');
    });
    await r.check(era, 'tools/list', async () => {
      const res = await inspector(cliEra, ['--method', 'tools/list']);
      assertTools(res.tools ?? []);
    });
    await r.check(era, 'tools/call', async () => {
      assertEcho(await inspector(cliEra, ['--method', 'tools/call', '--tool-name', 'echo', '--tool-args-json', '{"text":"hello"}']));
    });
    await r.check(era, 'resources/read', async () => {
      assertStaticText(await inspector(cliEra, ['--method', 'resources/read', '--uri', 'test://static-text']));
    });
    await r.check(era, 'prompts/get', async () => {
      assertPrompt(
        await inspector(cliEra, ['--method', 'prompts/get', '--prompt-name', 'test_prompt_with_arguments',
          '--prompt-args', 'arg1=alpha-insp', 'arg2=beta-insp']),
        'alpha-insp', 'beta-insp',
      );
    });
  }
} finally {
  rmSync(home, { recursive: true, force: true });
}
r.finish();
