// The browser suites' harness: starts the real `blanket serve` on a temporary data folder and
// a free port (with real local workers), and Debian's chromium through playwright-core.
// Nothing here downloads a browser, touches the user's folders or uses a fixed port.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root folder. */
export const repoRoot = path.resolve(here, '..', '..', '..');
/** Where screenshots and other artifacts go (gitignored). */
export const artifactsDir = process.env.BLANKET_UI_ARTIFACTS ||
  path.join(repoRoot, 'target', 'ui-screenshots');

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** The folder holding the `blanket` binary: BLANKET_TEST_BIN_DIR, else target/debug. */
export function binDir() {
  if (process.env.BLANKET_TEST_BIN_DIR) {
    return process.env.BLANKET_TEST_BIN_DIR;
  }
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target');
  return path.join(target, 'debug');
}

/** A port that was free a moment ago. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Resolves once `probe` gives a truthy value, polling every 25 ms, or rejects after `timeoutMs`. */
export async function waitFor(what, probe, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) {
        return value;
      }
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
}

/** Task types every suite can use: the bundled examples plus a few made for the tests. */
export const TEST_TYPES = {
  'upload_lines_task.toml': `description = "Prints each line of an uploaded file, slowly, with a greeting"
tags = ["bash", "unix"]
timeout = 120
command = '''
echo "hello $GREETEE"
i=0
while IFS= read -r line; do
  i=$((i + 1))
  echo "line $i: $line"
  sleep 0.3
done < "$INPUT_FILE"
echo "done after $i lines"
'''

  [[environment.default]]
  name = "GREETEE"
  value = "world"
  description = "Who to greet first"

  [[environment.required]]
  name = "INPUT_FILE"
  description = "The file whose lines are printed"
  type = "file"

  [[environment.optional]]
  name = "VERBOSE"
  description = "Set to 1 for more output"
`,
  'long_task.toml': `description = "Runs until cancelled, printing a tick every 200 ms"
tags = ["bash", "unix"]
timeout = 600
command = 'for i in $(seq 1 3000); do echo "tick $i"; sleep 0.2; done'
`,
  'quiet_task.toml': `description = "Writes a few lines, then runs quietly for a minute"
tags = ["bash", "unix"]
timeout = 120
command = 'for i in $(seq 1 40); do echo "step $i: preparing the data set"; done; echo "working quietly…"; sleep 60'
`,
  'broken_task.toml': `description = "A file with a mistake on line 3"
command = "echo broken"
timeout = "soon"
`,
};

/** Writes the test types (and the bundled examples) into `dir`. */
export function writeTypes(dir) {
  mkdirSync(dir, { recursive: true });
  const examples = path.join(repoRoot, 'examples', 'types');
  for (const name of readdirSync(examples)) {
    if (name.endsWith('.toml')) {
      cpSync(path.join(examples, name), path.join(dir, name));
    }
  }
  for (const [name, text] of Object.entries(TEST_TYPES)) {
    writeFileSync(path.join(dir, name), text);
  }
}

/**
 * Starts `blanket serve` on a fresh data folder and a free port. Options: `workers` (default 2),
 * `types` (write the test types, default true), `env` (extra environment), `port` (a fixed
 * port), `root` (the folder of an earlier server, to start it again on the same data).
 */
export async function startServer(options = {}) {
  const binary = path.join(binDir(), 'blanket');
  if (!existsSync(binary)) {
    throw new Error(`${binary} does not exist: build it first with \`cargo build --bins\` (or set BLANKET_TEST_BIN_DIR)`);
  }
  const root = options.root ?? mkdtempSync(path.join(os.tmpdir(), 'blanket-browser-'));
  const dataDir = path.join(root, 'data');
  const typesDir = path.join(root, 'types');
  for (const name of ['home', 'config', 'share', 'state', 'cache']) {
    mkdirSync(path.join(root, name), { recursive: true });
  }
  const args = ['serve', '--data-dir', dataDir, '--workers', String(options.workers ?? 2)];
  if (options.types !== false) {
    writeTypes(typesDir);
    args.push('--types-dir', typesDir);
  }
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('BLANKET_') && name !== 'RUST_LOG') {
      env[name] = value;
    }
  }
  Object.assign(env, {
    HOME: path.join(root, 'home'),
    XDG_CONFIG_HOME: path.join(root, 'config'),
    XDG_DATA_HOME: path.join(root, 'share'),
    XDG_STATE_HOME: path.join(root, 'state'),
    XDG_CACHE_HOME: path.join(root, 'cache'),
    BLANKET_LOG: 'warn',
  }, options.env || {});

  let lastError;
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const port = options.port ?? await freePort();
    const child = spawn(binary, [...args, '--port', String(port)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    const exited = once(child, 'exit');
    const url = `http://127.0.0.1:${port}`;
    try {
      await Promise.race([
        waitFor(`${url}/version to answer`, async () => (await fetch(`${url}/version`)).ok, START_TIMEOUT_MS),
        exited.then(([code]) => { throw new Error(`blanket serve exited with ${code}:\n${output}`); }),
      ]);
    } catch (error) {
      lastError = error;
      child.kill('SIGKILL');
      if (/already in use/.test(output) && options.port === undefined) {
        continue;
      }
      throw error;
    }
    const server = {
      url,
      port,
      root,
      dataDir,
      typesDir,
      child,
      output: () => output,
      /** JSON from the REST API. */
      async api(method, urlPath, body) {
        const response = await fetch(url + urlPath, {
          method,
          headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await response.text();
        if (!response.ok) {
          throw new Error(`${method} ${urlPath} answered ${response.status}: ${text}`);
        }
        return text ? JSON.parse(text) : null;
      },
      /** Stops the server (SIGTERM, then SIGKILL after a deadline) and removes its folder. */
      async stop({ keep = false } = {}) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
        killLeftovers(root);
        if (!keep) {
          rmSync(root, { recursive: true, force: true });
        }
      },
    };
    return server;
  }
  throw lastError;
}

/**
 * Kills the processes this harness started that outlived their server (workers it launched,
 * when the server had to be killed): those whose command line names our temporary folder.
 */
function killLeftovers(root) {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (commandLine.includes(root)) {
        process.kill(Number(entry), 'SIGKILL');
      }
    } catch {
      // Gone already, or not ours to read.
    }
  }
}

/**
 * Debian's chromium, headless. Playwright gives every launch a fresh temporary
 * `--user-data-dir` of its own (it refuses one in `args`), so no profile is shared.
 */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.BLANKET_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Saves a full-page screenshot as `<artifactsDir>/<name>.png`. */
export async function screenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name}.png`);
  // A full-page shot of a scrolled page paints the sticky top bar mid-page.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
