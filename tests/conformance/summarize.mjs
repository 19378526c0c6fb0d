// Score the conformance runs of run.sh, one revision at a time.
//
// usage: node summarize.mjs RESULTS REVISION [REVISION ...]
//
// RESULTS/<revision>/ holds what the suite wrote (a folder per scenario,
// server-<scenario>-<timestamp>/checks.json), its log and its exit status. The revision's
// requirement set, shipped inside the pinned suite (requirements/<revision>.yaml), names the
// scenarios that are scored; its `not_scored` ones (extensions, scenarios added after the
// revision shipped) are run and reported but never counted.
//
// A scored scenario passes when its checks.json holds at least one SUCCESS check and no
// FAILURE check (the rule of the suite's own tier report); one without a result (a crash,
// a timeout) fails. WARNING checks (a missed SHOULD) are listed but fail nothing. A revision
// fails when a scored scenario fails or the suite exited non-zero. Prints the failures with
// their checks, writes RESULTS/<revision>/summary.json, ends with one line per revision,
// `conformance REVISION: N passed, M failed`, and exits 1 when a revision failed.

import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parse } from 'yaml';

const suite = fileURLToPath(new URL('node_modules/@modelcontextprotocol/conformance/', import.meta.url));
const [results, ...revisions] = process.argv.slice(2);
if (!results || revisions.length === 0) {
  console.error('usage: node summarize.mjs RESULTS REVISION [REVISION ...]');
  process.exit(2);
}

// Scenario result folders: server-<scenario>-<ISO timestamp with ':' and '.' as '-'>.
const FOLDER = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/;

// The newest checks.json per scenario (null: the folder exists, the scenario never finished).
function checksByScenario(dir) {
  const found = new Map();
  const folders = existsSync(dir) ? readdirSync(dir).filter((name) => FOLDER.test(name)).sort() : [];
  for (const folder of folders) {
    const file = join(dir, folder, 'checks.json');
    let checks = null;
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8'));
      if (Array.isArray(parsed)) checks = parsed;
    } catch {
      // no checks.json, or a torn one: the scenario did not finish
    }
    found.set(FOLDER.exec(folder)[1], checks);
  }
  return found;
}

const oneLine = (text) => String(text ?? '').replace(/\s+/g, ' ').trim().slice(0, 200);
const described = (check) => `${check.id}${check.errorMessage ? `: ${oneLine(check.errorMessage)}` : ''}`;

function judge(checks) {
  if (checks === undefined) return { passed: false, why: ['no result: the scenario did not run'] };
  if (checks === null) return { passed: false, why: ['no checks.json: the scenario crashed or timed out'] };
  const failures = checks.filter((c) => c?.status === 'FAILURE');
  const warnings = [...new Set(checks.filter((c) => c?.status === 'WARNING').map(described))];
  if (failures.length) return { passed: false, why: [...new Set(failures.map(described))], warnings };
  if (!checks.some((c) => c?.status === 'SUCCESS')) return { passed: false, why: ['no SUCCESS check'], warnings };
  return { passed: true, why: [], warnings };
}

const version = JSON.parse(readFileSync(join(suite, 'package.json'), 'utf8')).version;
const counts = [];
let failedAny = false;

for (const revision of revisions) {
  const dir = join(results, revision);
  const file = join(suite, 'requirements', `${revision}.yaml`);
  if (!existsSync(file)) {
    failedAny = true;
    counts.push(`conformance ${revision}: no requirement set in suite ${version}`);
    continue;
  }
  const set = parse(readFileSync(file, 'utf8')) ?? {};
  const scored = (set.server ?? []).map(String);
  const notScored = (set.not_scored ?? []).filter((e) => e?.leg === 'server').map((e) => String(e.scenario));
  const checks = checksByScenario(dir);
  const exit = Number(existsSync(join(dir, 'exit-status')) ? readFileSync(join(dir, 'exit-status'), 'utf8') : NaN);

  const judged = scored.map((scenario) => ({ scenario, ...judge(checks.get(scenario)) }));
  const passed = judged.filter((s) => s.passed);
  const failed = judged.filter((s) => !s.passed);
  const extra = notScored.map((scenario) => ({ scenario, ...judge(checks.get(scenario)) }));
  const verdict = failed.length === 0 && exit === 0 ? 'pass' : 'fail';
  if (verdict === 'fail') failedAny = true;

  writeFileSync(join(dir, 'summary.json'), `${JSON.stringify({
    revision,
    suite: `@modelcontextprotocol/conformance@${version}`,
    suiteExitStatus: Number.isNaN(exit) ? null : exit,
    passed: passed.length,
    failed: failed.length,
    total: judged.length,
    failing: failed.map(({ scenario, why }) => ({ scenario, why })),
    warnings: judged.filter((s) => s.warnings?.length).map(({ scenario, warnings }) => ({ scenario, warnings })),
    notScored: extra.map(({ scenario, passed: ok, why }) => ({ scenario, passed: ok, why })),
    verdict,
  }, null, 2)}\n`);

  console.log(`\n[${revision}] ${passed.length}/${judged.length} scored scenarios passed (suite exit status ${exit})`);
  for (const s of failed) {
    console.log(`  FAIL ${s.scenario}`);
    for (const why of s.why.slice(0, 5)) console.log(`       - ${why}`);
  }
  for (const s of judged) for (const w of (s.warnings ?? []).slice(0, 3)) console.log(`  WARN ${s.scenario} - ${w}`);
  const extraFailed = extra.filter((s) => !s.passed).map((s) => s.scenario);
  console.log(`  not scored: ${extra.length} run, ${extraFailed.length} failing${extraFailed.length ? `: ${extraFailed.join(', ')}` : ''}`);
  console.log(`  results: ${dir}`);
  counts.push(`conformance ${revision}: ${passed.length} passed, ${failed.length} failed`);
}

console.log('');
for (const line of counts) console.log(line);
process.exit(failedAny ? 1 : 0);
