// Measures the web UI against its figures, on the real `blanket serve` (the release build
// when there is one, else the debug build) and Debian's chromium:
//
//  1. the tasks page with 100,000 stored tasks: server render time, p50 <= 50 ms;
//  2. a 50 MB task log: the task page shows its tail in under a second, and the page stays
//     responsive while a log grows fast;
//  3. a change to a task -> visible in two open pages: p99 <= 200 ms.
//
// Usage: node bench.mjs [--tasks N] [--changes N]. Writes target/ui-bench/report.md and .json.

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { launchBrowser, repoRoot, startServer, waitFor } from './lib/harness.mjs';

const argument = (name, fallback) => {
  const index = process.argv.indexOf(name);
  return index > 0 ? Number(process.argv[index + 1]) : fallback;
};
const STORED_TASKS = argument('--tasks', 100_000);
const CHANGES = argument('--changes', 200);
const RENDERS = argument('--renders', 200);
const LOG_BYTES = 50 * 1024 * 1024;
const outDir = path.join(repoRoot, 'target', 'ui-bench');

function percentile(values, fraction) {
  const sorted = [...values].sort((left, right) => left - right);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index];
}

function summary(values) {
  return {
    count: values.length,
    p50: percentile(values, 0.5),
    p95: percentile(values, 0.95),
    p99: percentile(values, 0.99),
    max: Math.max(...values),
  };
}

const fmt = (value) => `${value.toFixed(1)} ms`;

async function timeGet(url) {
  const started = performance.now();
  const response = await fetch(url);
  await response.text();
  if (!response.ok) {
    throw new Error(`${url} answered ${response.status}`);
  }
  return performance.now() - started;
}

async function seed(server, count) {
  const started = performance.now();
  const types = ['echo_task', 'fail_task', 'sleep_task', 'wordcount_task'];
  let next = 0;
  const submitOne = async () => {
    while (next < count) {
      const index = next;
      next += 1;
      const type = types[index % types.length];
      const environment = type === 'wordcount_task' ? { INPUT_FILE: 'x.txt' } : { NAME: `n${index}` };
      const response = await fetch(`${server.url}/task/`, {
        method: 'POST',
        body: JSON.stringify({ type, environment, tags: [`batch${index % 10}`] }),
      });
      if (response.status !== 201) {
        throw new Error(`submit answered ${response.status}: ${await response.text()}`);
      }
      await response.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 16 }, submitOne));
  return performance.now() - started;
}

async function main() {
  mkdirSync(outDir, { recursive: true });
  const release = path.join(repoRoot, 'target', 'release');
  if (!process.env.BLANKET_TEST_BIN_DIR) {
    const { existsSync } = await import('node:fs');
    if (existsSync(path.join(release, 'blanket'))) {
      process.env.BLANKET_TEST_BIN_DIR = release;
    }
  }
  const build = path.basename(process.env.BLANKET_TEST_BIN_DIR || 'debug');
  const report = { build, storedTasks: STORED_TASKS };
  console.log(`blanket build: ${build}; seeding ${STORED_TASKS} tasks (no workers, so they stay queued)…`);

  const server = await startServer({ workers: 0 });
  const browser = await launchBrowser();
  try {
    report.seedSeconds = (await seed(server, STORED_TASKS)) / 1000;
    console.log(`seeded in ${report.seedSeconds.toFixed(1)} s`);

    // 1. Server render of the tasks page.
    for (let warm = 0; warm < 10; warm += 1) {
      await timeGet(`${server.url}/ui/`);
    }
    const pages = {
      'tasks page (/ui/)': '/ui/',
      'tasks page, filtered by state and type': '/ui/?states=WAITING&types=echo_task',
      'tasks page, page 1000 (offset 49,950)': '/ui/?offset=49950',
      'rows partial (a live refresh)': '/ui/partials/tasks-rows',
    };
    report.render = {};
    for (const [name, url] of Object.entries(pages)) {
      const times = [];
      for (let round = 0; round < RENDERS; round += 1) {
        times.push(await timeGet(server.url + url));
      }
      report.render[name] = summary(times);
      console.log(`${name}: p50 ${fmt(report.render[name].p50)}, p99 ${fmt(report.render[name].p99)}`);
    }

    // 3. A change -> visible in an open page, and in two at once (with the tasks stored).
    const measureChanges = async (pageCount, changes) => {
      const context = await browser.newContext();
      const watchers = [];
      for (let index = 0; index < pageCount; index += 1) {
        const page = await context.newPage();
        await page.goto(`${server.url}/ui/`);
        await page.waitForFunction(() => window.blanketLive &&
          [...window.blanketLive.sources].every((source) => source.readyState === 1));
        await page.evaluate(() => {
          window.firstSeen = {};
          const rows = document.getElementById('tasks-rows');
          const note = () => {
            const now = performance.timeOrigin + performance.now();
            for (const link of rows.querySelectorAll('td.id a')) {
              const href = link.getAttribute('href');
              if (!(href in window.firstSeen)) {
                window.firstSeen[href] = now;
              }
            }
          };
          note();
          new MutationObserver(note).observe(rows, { childList: true, subtree: true });
        });
        watchers.push(page);
      }
      const latencies = [];
      for (let change = 0; change < changes; change += 1) {
        const sentAt = Date.now();
        const response = await fetch(`${server.url}/task/`, { method: 'POST', body: JSON.stringify({ type: 'echo_task' }) });
        const task = await response.json();
        for (const page of watchers) {
          const seen = await page.waitForFunction(
            (href) => window.firstSeen[href], `/ui/tasks/${task.id}`, { timeout: 10_000, polling: 'raf' },
          ).then((handle) => handle.jsonValue());
          latencies.push(seen - sentAt);
        }
        // Changes closer together than the stream's 50 ms gap are merged into one refresh.
        await new Promise((resolve) => setTimeout(resolve, 60));
      }
      await context.close();
      return latencies;
    };
    const single = await measureChanges(1, CHANGES);
    report.changeVisible = summary(single);
    console.log(`change visible in an open page: p50 ${fmt(report.changeVisible.p50)}, p99 ${fmt(report.changeVisible.p99)}`);
    const double = await measureChanges(2, Math.ceil(CHANGES / 2));
    report.changeVisibleTwoPages = summary(double);
    console.log(`change visible in two open pages: p50 ${fmt(report.changeVisibleTwoPages.p50)}, p99 ${fmt(report.changeVisibleTwoPages.p99)}`);

    // 2. A 50 MB log.
    const typeFile = path.join(server.typesDir, 'bulk_log_task.toml');
    writeFileSync(typeFile, `command = '''
i=0
while [ $i -lt ${LOG_BYTES / (1024 * 1024)} ]; do
  yes "log line: the quick brown fox jumps over the lazy dog 0123456789" | head -c 1048576
  i=$((i + 1))
done
echo "the end of the big log"
'''
tags = ["bench-log"]
timeout = 300
`);
    writeFileSync(path.join(server.typesDir, 'trickle_log_task.toml'), `command = '''
for i in $(seq 1 20000); do echo "fast line $i of a log that grows while the page follows it"; done
for i in $(seq 1 60); do seq 1 5000 | sed "s/^/burst $i line /"; sleep 0.05; done
'''
tags = ["bench-log"]
timeout = 300
`);
    await fetch(`${server.url}/ui/task-types/reload`, { method: 'POST' });
    // Only these two types carry the tag, so the worker leaves the seeded tasks alone.
    await server.api('POST', '/worker/', { tags: ['bench-log'] });
    const big = await server.api('POST', '/task/', { type: 'bulk_log_task', priority: 100 });
    const done = await waitFor('the 50 MB log to be written', async () => {
      const task = await server.api('GET', `/task/${big.id}`);
      return ['SUCCESS', 'ERROR', 'TIMEDOUT', 'STOPPED'].includes(task.state) && task;
    }, 120_000);
    const logPage = await browser.newPage();
    const renders = [];
    const opens = [];
    for (let round = 0; round < 5; round += 1) {
      renders.push(await timeGet(`${server.url}/ui/tasks/${big.id}`));
      const started = Date.now();
      await logPage.goto(`${server.url}/ui/tasks/${big.id}`, { waitUntil: 'domcontentloaded' });
      await logPage.waitForFunction(() => {
        const log = document.querySelector('pre[aria-label="task stdout"]');
        return log && log.textContent.includes('the end of the big log') && log.scrollTop > 0;
      }, null, { polling: 'raf' });
      opens.push(Date.now() - started);
    }
    report.bigLog = {
      state: done.state,
      bytes: LOG_BYTES,
      serverRender: summary(renders),
      openToTailVisible: summary(opens),
    };
    const earlier = Date.now();
    await logPage.getByRole('button', { name: 'Load earlier lines' }).click();
    await logPage.waitForFunction(() => document.querySelector('[data-log-earlier]').disabled === false);
    report.bigLog.loadEarlierMs = Date.now() - earlier;
    console.log(`50 MB log: page render p50 ${fmt(report.bigLog.serverRender.p50)}, tail visible p50 ${fmt(report.bigLog.openToTailVisible.p50)} (max ${fmt(report.bigLog.openToTailVisible.max)})`);

    // The page stays responsive while it follows a log growing by ~300,000 lines.
    const trickle = await server.api('POST', '/task/', { type: 'trickle_log_task', priority: 100 });
    await logPage.goto(`${server.url}/ui/tasks/${trickle.id}`);
    const roundTrips = [];
    const followDeadline = Date.now() + 8_000;
    while (Date.now() < followDeadline) {
      const started = performance.now();
      await logPage.evaluate(() => document.querySelectorAll('.log-chunk').length);
      roundTrips.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await logPage.waitForFunction(() => document.querySelector('[data-log]').dataset.ended === 'true', null, { timeout: 60_000 });
    const shownLines = await logPage.evaluate(() =>
      document.querySelector('pre[aria-label="task stdout"]').textContent.split('\n').length - 1);
    report.following = { roundTrip: summary(roundTrips), linesShownAtEnd: shownLines };
    console.log(`while following a fast log: page round trip p50 ${fmt(report.following.roundTrip.p50)}, p99 ${fmt(report.following.roundTrip.p99)}; ${shownLines} lines shown when it ended`);
    await logPage.close();
  } finally {
    await browser.close();
    await server.stop();
  }

  const render = report.render['tasks page (/ui/)'];
  const lines = [
    '# Web UI figures',
    '',
    `Measured by \`tests/browser/bench.mjs\` on the ${report.build} build, ${STORED_TASKS.toLocaleString('en')} stored tasks, Debian's chromium (headless).`,
    '',
    '| figure | goal | measured |',
    '|---|---|---|',
    `| tasks page server render, ${STORED_TASKS.toLocaleString('en')} tasks | p50 <= 50 ms | p50 ${fmt(render.p50)}, p99 ${fmt(render.p99)} |`,
    ...Object.entries(report.render).slice(1).map(([name, value]) =>
      `| ${name} | | p50 ${fmt(value.p50)}, p99 ${fmt(value.p99)} |`),
    `| 50 MB log: page open to tail visible | < 1 s | p50 ${fmt(report.bigLog.openToTailVisible.p50)}, max ${fmt(report.bigLog.openToTailVisible.max)} (server render p50 ${fmt(report.bigLog.serverRender.p50)}) |`,
    `| 50 MB log: load 256 KiB earlier | | ${report.bigLog.loadEarlierMs} ms |`,
    `| following a fast-growing log: page round trip | stays responsive | p50 ${fmt(report.following.roundTrip.p50)}, p99 ${fmt(report.following.roundTrip.p99)} |`,
    `| change -> visible in an open page (${report.changeVisible.count} changes) | p99 <= 200 ms | p50 ${fmt(report.changeVisible.p50)}, p99 ${fmt(report.changeVisible.p99)}, max ${fmt(report.changeVisible.max)} |`,
    `| change -> visible in each of two open pages (${report.changeVisibleTwoPages.count} samples) | | p50 ${fmt(report.changeVisibleTwoPages.p50)}, p99 ${fmt(report.changeVisibleTwoPages.p99)}, max ${fmt(report.changeVisibleTwoPages.max)} |`,
    '',
  ];
  writeFileSync(path.join(outDir, 'report.md'), lines.join('\n'));
  writeFileSync(path.join(outDir, 'report.json'), JSON.stringify(report, null, 2));
  console.log(lines.join('\n'));
  const failures = [];
  if (render.p50 > 50) failures.push(`tasks page render p50 ${fmt(render.p50)} > 50 ms`);
  if (report.bigLog.openToTailVisible.p50 > 1000) failures.push('the 50 MB log took more than a second to show');
  if (report.changeVisible.p99 > 200) failures.push(`change visible p99 ${fmt(report.changeVisible.p99)} > 200 ms`);
  if (failures.length) {
    console.error(`missed: ${failures.join('; ')}`);
    process.exitCode = 1;
  }
}

await main();
