// The main journeys through the web UI in a real browser, against the real `blanket serve`
// with two real workers: submit with a file and watch it run, cancel, filter, manage
// workers, and see a broken type file's error.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { launchBrowser, startServer } from '../lib/harness.mjs';

const TIMEOUT = 20_000;

/** The row of task `id` in an open list. */
function taskRow(page, id) {
  return page.locator('#tasks-rows tr', { has: page.locator(`a[href="/ui/tasks/${id}"]`) });
}

/** Resolves once every live list of the page is connected. */
async function waitLive(page) {
  await page.waitForFunction(() => {
    const live = window.blanketLive;
    return live && live.sources.size > 0 && [...live.sources].every((source) => source.readyState === 1);
  }, null, { timeout: TIMEOUT });
}

describe('journeys', () => {
  let server;
  let browser;
  let context;

  before(async () => {
    server = await startServer({ workers: 2 });
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(TIMEOUT);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('submits from the form with variables and a file, and follows the task to SUCCESS', async () => {
    const list = await context.newPage();
    await list.goto(`${server.url}/ui/`);
    await waitLive(list);
    await list.evaluate(() => { window.stillTheSamePage = true; });

    const form = await context.newPage();
    await form.goto(`${server.url}/ui/`);
    await form.getByRole('button', { name: 'New', exact: true }).click();
    await form.getByLabel('new task type').selectOption('upload_lines_task');
    await form.locator('input[name="env.GREETEE"]').waitFor();
    assert.equal(await form.locator('input[name="env.GREETEE"]').inputValue(), 'world', 'the default is prefilled');
    await form.locator('input[name="env.GREETEE"]').fill('browser');
    await form.locator('input[name="file.INPUT_FILE"]').setInputFiles({
      name: 'poem.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('roses\nviolets\nsugar\nhoney\nyou\n'),
    });
    assert.equal(await form.locator('input[name="env.INPUT_FILE"]').inputValue(), 'poem.txt',
      'picking the file fills in its name');
    await form.locator('input[name="customEnvName"]').first().fill('EXTRA_NOTE');
    await form.locator('input[name="customEnvValue"]').first().fill('from the browser');
    await form.getByRole('button', { name: 'launch task' }).click();
    const view = form.getByRole('link', { name: 'View task' });
    await view.waitFor();
    const href = await view.getAttribute('href');
    const id = href.split('/').pop();

    await taskRow(list, id).waitFor();
    assert.equal(await list.evaluate(() => window.stillTheSamePage), true, 'the list updated without a reload');
    const task = await server.api('GET', `/task/${id}`);
    assert.equal(task.defaultEnv.GREETEE, 'browser');
    assert.equal(task.defaultEnv.INPUT_FILE, 'poem.txt');
    assert.equal(task.defaultEnv.EXTRA_NOTE, 'from the browser');

    await view.click();
    await form.getByRole('heading', { name: 'Task Detail' }).waitFor();
    const log = form.locator('pre[aria-label="task stdout"]');
    await form.waitForFunction(
      () => document.querySelector('pre[aria-label="task stdout"]').textContent.includes('hello browser'),
    );
    const stateWhileHello = await server.api('GET', `/task/${id}`);
    await form.waitForFunction(
      () => document.querySelector('pre[aria-label="task stdout"]').textContent.includes('done after 5 lines'),
    );
    await form.locator('#task-summary .badge', { hasText: 'SUCCESS' }).waitFor();
    const text = await log.textContent();
    assert.match(text, /line 1: roses\nline 2: violets\nline 3: sugar\nline 4: honey\nline 5: you\n/);
    assert.ok(['CLAIMED', 'RUNNING'].includes(stateWhileHello.state) || text.includes('hello browser'),
      'the log showed while the task ran');
    await form.locator('[data-log-state]', { hasText: 'Ended' }).first().waitFor();
    await taskRow(list, id).locator('.badge', { hasText: 'SUCCESS' }).waitFor();
    const files = await form.locator('#task-history .files a').allTextContents();
    assert.ok(files.includes('poem.txt'), `the uploaded file is listed: ${files}`);
    await list.close();
    await form.close();
  });

  it('shows the log live while the task runs, tail first', async () => {
    const task = await server.api('POST', '/task/', { type: 'long_task' });
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/tasks/${task.id}`);
    const log = page.locator('pre[aria-label="task stdout"]');
    await page.waitForFunction(() => /tick 3\n/.test(document.querySelector('pre[aria-label="task stdout"]').textContent));
    const before = (await log.textContent()).length;
    await page.waitForFunction(
      (length) => document.querySelector('pre[aria-label="task stdout"]').textContent.length > length,
      before,
    );
    assert.equal((await server.api('GET', `/task/${task.id}`)).state, 'RUNNING', 'the log grew while it ran');
    await server.api('PUT', `/task/${task.id}/cancel`);
    await page.locator('#task-summary .badge', { hasText: 'STOPPED' }).waitFor();
    // The page lets go of the log once the stream says the task ended.
    await page.locator('[data-log-state]', { hasText: 'Ended' }).first().waitFor();
    await page.close();
  });

  it('cancels a running task from the list', async () => {
    const task = await server.api('POST', '/task/', { type: 'long_task' });
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/`);
    const row = taskRow(page, task.id);
    await row.locator('.badge', { hasText: 'RUNNING' }).waitFor();
    await row.getByRole('button', { name: 'Cancel' }).click();
    await row.locator('.badge', { hasText: 'STOPPED' }).waitFor();
    const stored = await server.api('GET', `/task/${task.id}`);
    assert.equal(stored.state, 'STOPPED');
    await page.close();
  });

  it('filters by state and type with the form and from the URL', async () => {
    const echo = await server.api('POST', '/task/', { type: 'echo_task' });
    const fail = await server.api('POST', '/task/', { type: 'fail_task' });
    for (const id of [echo.id, fail.id]) {
      const deadline = Date.now() + TIMEOUT;
      while (!['SUCCESS', 'ERROR'].includes((await server.api('GET', `/task/${id}`)).state)) {
        assert.ok(Date.now() < deadline, `task ${id} did not finish`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/`);
    const filter = page.locator('#task-filter');
    await filter.locator('label.chip', { hasText: 'SUCCESS' }).click();
    await filter.locator('label.chip', { hasText: 'echo_task' }).click();
    await filter.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/states=SUCCESS/);
    assert.match(page.url(), /types=echo_task/);
    await taskRow(page, echo.id).waitFor();
    assert.equal(await taskRow(page, fail.id).count(), 0, 'the failed task is filtered out');
    const states = await page.locator('#tasks-rows .badge').allTextContents();
    assert.ok(states.length > 0 && states.every((state) => state === 'SUCCESS'), `${states}`);

    await page.goto(`${server.url}/ui/?types=fail_task&states=ERROR`);
    await taskRow(page, fail.id).waitFor();
    assert.equal(await taskRow(page, echo.id).count(), 0);
    assert.equal(await page.locator('input[name="types"][value="fail_task"]').isChecked(), true);
    assert.equal(await page.locator('input[name="states"][value="ERROR"]').isChecked(), true);
    await page.close();
  });

  it('launches, stops and restarts a worker from the UI', async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/workers`);
    await waitLive(page);
    const before = await page.locator('#workers-rows tr').count();
    await page.getByRole('button', { name: 'New', exact: true }).click();
    await page.getByLabel('Tags').fill('bash, unix, browser');
    await page.getByRole('button', { name: 'launch worker' }).click();
    await page.getByRole('heading', { name: 'Worker launched' }).waitFor();
    const row = page.locator('#workers-rows tr', { hasText: 'bash, unix, browser' });
    await row.locator('.badge', { hasText: 'running' }).waitFor();
    assert.equal(await page.locator('#workers-rows tr').count(), before + 1);

    await row.getByRole('button', { name: 'Stop', exact: true }).click();
    await row.locator('.badge', { hasText: 'stopped' }).waitFor();
    await row.getByRole('button', { name: 'Restart' }).click();
    await row.locator('.badge', { hasText: 'running' }).waitFor();

    await row.locator('td.id a').click();
    await page.getByRole('heading', { name: 'Worker Detail' }).waitFor();
    await page.getByRole('heading', { name: 'Live Log' }).waitFor();
    await page.getByRole('link', { name: 'Back to Workers' }).waitFor();
    await page.close();
  });

  it('shows a broken type file with its error and line', async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/task-types`);
    const broken = page.locator('.broken-list li', { hasText: 'broken_task' });
    await broken.waitFor();
    assert.match(await broken.textContent(), /Line 3/);
    await broken.getByRole('link', { name: 'broken_task' }).click();
    await page.locator('.notice-error').waitFor();
    const marked = await page.locator('.line.marked').textContent();
    assert.match(marked, /timeout = "soon"/);
    await page.close();
  });
});
