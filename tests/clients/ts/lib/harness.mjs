// Shared check harness for the TypeScript client tests.
//
// Every check prints exactly one line on stdout, `PASS <name>` or
// `FAIL <name>: <reason>`, which tests/clients/run.sh counts. Anything else goes to
// stderr. The process exit code is 0 only if every check passed.
import assert from 'node:assert/strict';

export { assert };

export const STATIC_TEXT = 'This is the content of the static text resource.';
const CHECK_TIMEOUT_MS = Number(process.env.CLIENT_CHECK_TIMEOUT_MS || 20000);

export function serverUrl() {
  const url = process.argv[2];
  if (!url) {
    console.error(`usage: node ${process.argv[1]} URL`);
    process.exit(2);
  }
  return url;
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function reporter(client) {
  let passed = 0;
  let failed = 0;
  const line = (s) => process.stdout.write(`${s}\n`);
  return {
    /** Run one check; returns true when it passed. */
    async check(era, name, fn, timeoutMs = CHECK_TIMEOUT_MS) {
      const label = `${client} ${era} ${name}`;
      try {
        await withTimeout(Promise.resolve().then(fn), timeoutMs, label);
        passed += 1;
        line(`PASS ${label}`);
        return true;
      } catch (err) {
        failed += 1;
        const msg = (err && err.stack && process.env.CLIENT_TESTS_VERBOSE ? err.stack : String(err?.message ?? err));
        line(`FAIL ${label}: ${msg.replace(/\s*\n\s*/g, ' ')}`);
        return false;
      }
    },
    /** Record checks that could not run because an earlier step failed. */
    notRun(era, names, why) {
      for (const name of names) {
        failed += 1;
        line(`FAIL ${client} ${era} ${name}: not run: ${why}`);
      }
    },
    finish() {
      console.error(`${client}: ${passed} passed, ${failed} failed`);
      // Exit explicitly: a connection left open by a failed check must not keep the
      // process alive (stdout/stderr writes to pipes and files are synchronous).
      process.exit(failed === 0 ? 0 : 1);
    },
  };
}

// ---- assertions shared by every client --------------------------------------------

/** Page through a list method; `page(cursor)` returns `{ items, nextCursor }`. */
export async function listAll(page) {
  const all = [];
  let cursor;
  for (let i = 0; i < 100; i += 1) {
    const { items, nextCursor } = await page(cursor);
    all.push(...items);
    if (!nextCursor) return all;
    cursor = nextCursor;
  }
  throw new Error('more than 100 pages');
}

export function assertTools(tools) {
  const names = tools.map((t) => t.name);
  for (const want of ['echo', 'test_simple_text']) {
    assert.ok(names.includes(want), `tool ${want} missing from ${JSON.stringify(names)}`);
  }
}

export function assertEcho(result) {
  assert.notEqual(result.isError, true, `tool reported an error: ${JSON.stringify(result)}`);
  assert.deepEqual(result.content, [{ type: 'text', text: 'hello' }], `content is ${JSON.stringify(result.content)}`);
}

export function assertStaticText(result) {
  assert.ok(Array.isArray(result.contents) && result.contents.length === 1, `expected one content item, got ${JSON.stringify(result.contents)}`);
  assert.equal(result.contents[0].uri, 'test://static-text');
  assert.equal(result.contents[0].text, STATIC_TEXT);
}

export function assertPrompt(result, arg1, arg2) {
  assert.ok(Array.isArray(result.messages) && result.messages.length > 0, `no messages in ${JSON.stringify(result)}`);
  const text = result.messages.map((m) => m?.content?.text ?? '').join('\n');
  assert.ok(text.includes(arg1), `messages do not mention ${arg1}: ${JSON.stringify(text)}`);
  assert.ok(text.includes(arg2), `messages do not mention ${arg2}: ${JSON.stringify(text)}`);
}
