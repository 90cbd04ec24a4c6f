// Live updates in a real browser: open pages follow changes within 200 ms, an idle page
// asks nothing but its one SSE stream, streams close when a page goes away and come back
// after a server restart, and the desktop transport (Tauri events) opens no EventSource.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { launchBrowser, startServer, waitFor } from '../lib/harness.mjs';

const TIMEOUT = 20_000;
const VISIBLE_WITHIN_MS = 200;

/** Resolves once every live list of the page is connected. */
async function waitLive(page) {
  await page.waitForFunction(() => {
    const live = window.blanketLive;
    return live && live.sources.size > 0 && [...live.sources].every((source) => source.readyState === 1);
  }, null, { timeout: TIMEOUT });
}

/** Makes the page note (wall clock, ms) when a row linking to a task with `typeName` shows up. */
async function watchForType(page, typeName) {
  await page.evaluate((name) => {
    window.seenAt = null;
    const rows = document.getElementById('tasks-rows');
    const check = () => {
      if (window.seenAt === null && [...rows.querySelectorAll('td.type')].some((cell) => cell.textContent === name)) {
        window.seenAt = performance.timeOrigin + performance.now();
      }
    };
    new MutationObserver(check).observe(rows, { childList: true, subtree: true, characterData: true });
    check();
  }, typeName);
}

async function seenAt(page) {
  return page.waitForFunction(() => window.seenAt, null, { timeout: TIMEOUT }).then((handle) => handle.jsonValue());
}

describe('live updates', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ workers: 0 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows a change in two open pages within 200 ms', async () => {
    const context = await browser.newContext();
    const pages = [await context.newPage(), await context.newPage()];
    for (const page of pages) {
      await page.goto(`${server.url}/ui/`);
      await waitLive(page);
    }
    const latencies = [];
    for (let round = 0; round < 3; round += 1) {
      // Each round waits for a type no row shows yet, so a round never sees the last one's row.
      const typeName = ['echo_task', 'fail_task', 'timeout_task'][round];
      for (const page of pages) {
        await watchForType(page, typeName);
      }
      const sentAt = Date.now();
      await server.api('POST', '/task/', { type: typeName });
      for (const page of pages) {
        latencies.push((await seenAt(page)) - sentAt);
      }
    }
    console.log(`change visible after (ms): ${latencies.map((value) => value.toFixed(0)).join(', ')}`);
    for (const latency of latencies) {
      assert.ok(latency <= VISIBLE_WITHIN_MS, `a page took ${latency.toFixed(0)} ms to show the change`);
    }
    await context.close();
  });

  it('makes no request for 10 s on an idle page besides its one SSE stream', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const streams = [];
    page.on('request', (request) => {
      if (request.url().includes('/ui/sse/')) {
        streams.push(request.url());
      }
    });
    await page.goto(`${server.url}/ui/`);
    await waitLive(page);
    // The stream's first event refreshes the rows once; let that settle before watching.
    await page.waitForLoadState('networkidle').catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 500));
    const requests = [];
    page.on('request', (request) => requests.push(`${request.method()} ${request.url()}`));
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    assert.deepEqual(requests, [], 'an idle page asked for something');
    assert.deepEqual(streams, [`${server.url}/ui/sse/tasks`], 'exactly one EventSource per page');
    await context.close();
  });

  it('closes its stream when the page goes away, and opens one again on the way back', async () => {
    const subscribers = async () => (await server.api('GET', '/ops/status/')).subscribers.tasks;
    await waitFor('no open task streams', async () => (await subscribers()) === 0);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/`);
    await waitLive(page);
    assert.equal(await subscribers(), 1);
    await page.goto(`${server.url}/ui/about`);
    await waitFor('the stream to close after leaving the page', async () => (await subscribers()) === 0);
    await page.goBack();
    await waitLive(page);
    await waitFor('one stream again after coming back', async () => (await subscribers()) === 1);
    await context.close();
    await waitFor('no stream once the page is closed', async () => (await subscribers()) === 0);
  });

  it('reconnects after the server restarts and catches up', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/`);
    await waitLive(page);
    const port = server.port;
    await server.stop({ keep: true });
    await page.locator('#live-status[data-state="connecting"]').waitFor({ timeout: TIMEOUT });
    server = await startServer({ workers: 0, port, root: server.root });
    const task = await server.api('POST', '/task/', { type: 'sleep_task' });
    await page.locator(`#tasks-rows a[href="/ui/tasks/${task.id}"]`).waitFor({ timeout: 30_000 });
    await page.locator('#live-status[data-state="live"]').waitFor({ timeout: TIMEOUT });
    await context.close();
  });

  it('uses Tauri events, and no EventSource, in the desktop window', async () => {
    const context = await browser.newContext();
    await context.addInitScript(() => {
      const listeners = new Map();
      window.eventSourcesOpened = 0;
      const RealEventSource = window.EventSource;
      window.EventSource = class extends RealEventSource {
        constructor(...args) {
          super(...args);
          window.eventSourcesOpened += 1;
        }
      };
      window.__TAURI__ = {
        event: {
          listen(name, handler) {
            listeners.set(name, handler);
            return Promise.resolve(() => listeners.delete(name));
          },
        },
      };
      window.emitDesktopEvent = (name) => listeners.get(name)?.({ event: name, payload: null });
      window.desktopListeners = () => [...listeners.keys()];
    });
    const page = await context.newPage();
    const streams = [];
    page.on('request', (request) => {
      if (request.url().includes('/ui/sse/')) {
        streams.push(request.url());
      }
    });
    await page.goto(`${server.url}/ui/`);
    await waitLive(page);
    assert.equal(await page.evaluate(() => window.blanketLive.transport), 'tauri');
    assert.deepEqual(await page.evaluate(() => window.desktopListeners()), ['tasks-changed']);
    const task = await server.api('POST', '/task/', { type: 'wordcount_task', environment: { INPUT_FILE: 'x' } });
    await page.waitForTimeout(300);
    assert.equal(await page.locator(`#tasks-rows a[href="/ui/tasks/${task.id}"]`).count(), 0,
      'nothing refreshes without the desktop event');
    await page.evaluate(() => window.emitDesktopEvent('tasks-changed'));
    await page.locator(`#tasks-rows a[href="/ui/tasks/${task.id}"]`).waitFor();
    assert.equal(await page.evaluate(() => window.eventSourcesOpened), 0, 'no EventSource in the desktop window');
    assert.deepEqual(streams, []);
    await context.close();
  });
});
