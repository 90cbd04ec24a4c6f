#!/usr/bin/python3
"""Journeys through the real desktop window.

Starts a virtual display (Xvfb), a D-Bus session and a real notification daemon (dunst), then
drives the built `blanket-desktop` through tauri-driver and WebKitWebDriver with selenium, and a
chromium page on the same coordinator beside it. Each app gets a temp data dir and a free port
(BLANKET_DATA_DIR, BLANKET_PORT, as for `blanket serve`). The app inherits tauri-driver's
environment, so every app configuration gets a tauri-driver of its own. Everything runs with a
temporary HOME (and XDG_CONFIG_HOME inside it), so the config file the Settings page saves and
the start-at-login entry land there, never in the real home.

Run by `cargo xtask test` (step "desktop window"); by hand:
    tests/desktop/journeys.py --bin-dir target/debug --artifacts target/desktop-tests
Prints one line per journey and closes with "N passed, N failed"; exits non-zero on a failure.
With --latency N it also measures N changes (curl submit -> row visible in the window) and
writes the figures to ARTIFACTS/latency.json.
"""

import argparse
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options as ChromeOptions
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.options import ArgOptions
from selenium.webdriver.remote.file_detector import UselessFileDetector
from selenium.webdriver.remote.remote_connection import RemoteConnection
from selenium.webdriver.support.ui import Select

# How long anything may take to happen before a journey fails.
DEADLINE = 20.0
# How long one WebDriver command may take: without a bound, a command the window never
# answers (seen twice on a loaded machine, at a screenshot) hangs the suite and CI with it.
WEBDRIVER_COMMAND_TIMEOUT = 60
# The notifier's quiet time that closes a burst (core::notify_policy::BURST_QUIET) plus margin.
BURST_SETTLE = 3.5
# The bound for a change to show in the window and in a browser at the same time.
LIVE_BOUND_MS = 200

# Records, in the page, when the task rows change and what they then say.
WATCH_ROWS = """
window.__rowChanges = [];
const rows = document.getElementById('tasks-rows');
new MutationObserver(() => window.__rowChanges.push([Date.now(), rows.innerText]))
  .observe(rows, {childList: true, subtree: true, characterData: true});
return true;
"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what, check, deadline=DEADLINE, interval=0.05):
    """Polls `check` until it returns something truthy, or fails naming `what`."""
    end = time.monotonic() + deadline
    last_error = None
    while time.monotonic() < end:
        try:
            value = check()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - the last one is reported
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f" ({last_error})" if last_error else ""))


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
        return json.loads(text) if text else None


class Desktop:
    """The display, the D-Bus session and dunst every app of this run shares."""

    def __init__(self, artifacts):
        self.artifacts = artifacts
        self.processes = []
        self.work = tempfile.mkdtemp(prefix="blanket-desktop-tests-")
        self.env = dict(os.environ)
        self.home = os.path.join(self.work, "home")
        self.env["HOME"] = self.home
        self.env["XDG_CONFIG_HOME"] = os.path.join(self.home, ".config")
        read, write = os.pipe()
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x860x24", "-nolisten", "tcp"],
            pass_fds=[write], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        self.processes.append(xvfb)
        with os.fdopen(read) as display:
            self.env["DISPLAY"] = ":" + display.readline().strip()
        self.env.pop("WAYLAND_DISPLAY", None)
        launched = subprocess.run(["dbus-launch", "--sh-syntax"], env=self.env,
                                  capture_output=True, text=True, check=True).stdout
        for line in launched.splitlines():
            if "=" in line and not line.startswith("export"):
                name, value = line.rstrip(";").split("=", 1)
                self.env[name] = value.strip("'")
        self.dbus_pid = int(self.env["DBUS_SESSION_BUS_PID"])
        # dunst's context menu goes through "dmenu": this one picks the line naming $DMENU_PICK.
        picker = os.path.join(self.work, "dmenu.sh")
        with open(picker, "w") as script:
            script.write('#!/bin/sh\ntee "%s/dmenu.in" | grep -m1 -F "$(cat "%s/pick")"\n' % (self.work, self.work))
        os.chmod(picker, 0o755)
        config = os.path.join(self.work, "dunstrc")
        with open(config, "w") as dunstrc:
            # Notifications stay until closed, so a slow machine cannot lose one before the
            # test acts on it.
            dunstrc.write(f"[global]\n    dmenu = {picker}\n")
            for urgency in ("low", "normal", "critical"):
                dunstrc.write(f"[urgency_{urgency}]\n    timeout = 0\n")
        self.dunst_log = open(os.path.join(artifacts, "dunst.log"), "w")
        dunst = subprocess.Popen(["dunst", "-config", config], env=self.env,
                                 stdout=self.dunst_log, stderr=subprocess.STDOUT)
        self.processes.append(dunst)
        # Asked of the bus, not of the name: a call to org.freedesktop.Notifications before
        # this dunst owns it makes the bus start Debian's D-Bus-activated dunst (default
        # config, no dmenu picker, notifications that expire), which may take the name first.
        wait_for("this dunst to own the notification name",
                 lambda: self.notifications_owner() == dunst.pid)

    def notifications_owner(self):
        """The pid owning org.freedesktop.Notifications on this session bus, or None."""
        asked = subprocess.run(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
             "org.freedesktop.DBus.GetConnectionUnixProcessID", "string:org.freedesktop.Notifications"],
            env=self.env, capture_output=True, text=True)
        return int(asked.stdout.split()[-1]) if asked.returncode == 0 else None

    def dunstctl(self, *args):
        return subprocess.run(["dunstctl", *args], env=self.env, capture_output=True,
                              text=True, check=True).stdout

    def displayed(self):
        return int(self.dunstctl("count", "displayed").strip())

    def history(self):
        """The notifications the daemon received and closed, newest first, as (id, summary)."""
        data = json.loads(self.dunstctl("history"))["data"]
        return [(entry["id"]["data"], entry["summary"]["data"]) for entry in (data[0] if data else [])]

    def closed_since(self, seen):
        """Summaries of the notifications closed since `seen`, a set of ids from `history`."""
        return [summary for entry_id, summary in self.history() if entry_id not in seen]

    def seen(self):
        """Closes what is shown and returns the ids received so far."""
        self.dunstctl("close-all")
        return {entry_id for entry_id, _ in self.history()}

    def invoke_action(self, label):
        """Picks `label` in the context menu of the newest notification, as a user would."""
        offered = os.path.join(self.work, "dmenu.in")
        if os.path.exists(offered):
            os.remove(offered)
        with open(os.path.join(self.work, "pick"), "w") as pick:
            pick.write(label)

        def menu_opened():
            # A notification just mapped may not take a context request yet: ask again.
            self.dunstctl("context")
            return wait_for("the context menu", lambda: os.path.exists(offered), deadline=2.0)

        try:
            wait_for("dunst to open the context menu", menu_opened, interval=0.2)
        except AssertionError:
            raise AssertionError(f"dunst opened no context menu ({self.displayed()} displayed)") from None

    def menu_offered(self):
        """What dunst's context menu last offered, for a failure message."""
        try:
            with open(os.path.join(self.work, "dmenu.in")) as offered:
                return offered.read()
        except OSError:
            return None

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
        try:
            os.kill(self.dbus_pid, signal.SIGTERM)
        except (ProcessLookupError, AttributeError):
            pass
        shutil.rmtree(self.work, ignore_errors=True)


class App:
    """One blanket-desktop run: its tauri-driver, its window session, its data and port."""

    def __init__(self, desktop, binary, extra_env=None, data_dir=None, port=None, ready=(By.ID, "tasks-rows")):
        self.desktop = desktop
        self.binary = binary
        self.port = port or free_port()
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="data-", dir=desktop.work)
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(desktop.env)
        self.env.update({
            "BLANKET_DATA_DIR": self.data_dir,
            "BLANKET_PORT": str(self.port),
            "BLANKET_WORKERS": "2",
            "BLANKET_NOTIFY_MIN_SECONDS": "0",
            "BLANKET_NOTIFY_WHEN_FOCUSED": "true",
            "WEBKIT_DISABLE_DMABUF_RENDERER": "1",
            "RUST_LOG": "info",
        })
        self.env.update(extra_env or {})
        driver_port, native_port = free_port(), free_port()
        self.log = open(os.path.join(desktop.artifacts, f"app-{self.port}.log"), "w")
        self.tauri_driver = subprocess.Popen(
            ["tauri-driver", "--port", str(driver_port), "--native-port", str(native_port),
             "--native-driver", shutil.which("WebKitWebDriver") or "/usr/bin/WebKitWebDriver"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        for port in (driver_port, native_port):
            wait_for("tauri-driver and WebKitWebDriver to listen",
                     lambda: socket.create_connection(("127.0.0.1", port), 1))
        RemoteConnection.set_timeout(WEBDRIVER_COMMAND_TIMEOUT)
        options = ArgOptions()
        options.set_capability("browserName", "wry")
        options.set_capability("tauri:options", {"application": binary})
        self.window = webdriver.Remote(command_executor=f"http://127.0.0.1:{driver_port}", options=options)
        wait_for("the first page", lambda: self.window.find_element(*ready))

    def pid(self):
        """The app's own pid: the process listening on its port."""
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{self.port}"], capture_output=True, text=True).stdout
        return int(out.split("pid=")[1].split(",")[0])

    def page_loads(self):
        """How many pages the app says it loaded in its window (its log's lines)."""
        with open(self.log.name) as log:
            return log.read().count("page loaded in the window")

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-f", f"worker .*--server {self.base}"], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def submit(self, task_type, environment=None):
        return http("POST", f"{self.base}/task/", {"type": task_type, "environment": environment or {}})

    def tasks(self):
        return http("GET", f"{self.base}/task/")

    def status(self):
        return http("GET", f"{self.base}/ops/status/")

    def screenshot(self, name):
        path = os.path.join(self.desktop.artifacts, name)
        self.window.get_screenshot_as_file(path)
        return path

    def end_session(self):
        """Quits the app (SIGTERM, the same graceful quit as the tray's), then ends the session:
        ending the session first would only close the window, which hides to the tray."""
        apps = subprocess.run(["pgrep", "-x", "-f", self.binary], capture_output=True, text=True).stdout.split()
        for pid in map(int, apps):
            os.kill(pid, signal.SIGTERM)
        for pid in map(int, apps):
            wait_for("the app to quit", lambda: not os.path.exists(f"/proc/{pid}"))
        try:
            self.window.quit()
        except Exception:  # noqa: BLE001 - the app is gone, so the session may be too
            pass
        self.tauri_driver.terminate()
        try:
            self.tauri_driver.wait(10)
        except subprocess.TimeoutExpired:
            self.tauri_driver.kill()
        self.log.close()


def first_change_with(page, text, since_ms):
    """When the page's task rows first showed `text`, in ms since the epoch, or None."""
    for stamp, rows in page.execute_script("return window.__rowChanges;"):
        if stamp >= since_ms and text in rows:
            return stamp
    return None


def window_visible(desktop):
    """Whether a mapped window titled "Blanket" is on the display."""
    return subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^Blanket$"],
                          env=desktop.env, capture_output=True).returncode == 0


class _ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]


class _XEvent(ctypes.Union):
    _fields_ = [("client", _ClientMessage), ("pad", ctypes.c_long * 24)]


def close_like_a_window_manager(desktop):
    """Sends the window WM_DELETE_WINDOW, which is what a title bar's close button does (Xvfb
    runs no window manager, and a page's `window.close()` is not a close request)."""
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^Blanket$"],
                           env=desktop.env, capture_output=True, text=True, check=True).stdout.split()
    xlib = ctypes.CDLL(ctypes.util.find_library("X11"))
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XInternAtom.restype = ctypes.c_ulong
    xlib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    xlib.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    xlib.XFlush.argtypes = [ctypes.c_void_p]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    display = xlib.XOpenDisplay(desktop.env["DISPLAY"].encode())
    try:
        event = _XEvent()
        event.client.type = 33  # ClientMessage
        event.client.display = display
        event.client.message_type = xlib.XInternAtom(display, b"WM_PROTOCOLS", 0)
        event.client.format = 32
        event.client.data[0] = xlib.XInternAtom(display, b"WM_DELETE_WINDOW", 0)
        event.client.data[1] = 0  # CurrentTime
        for window in found:
            event.client.window = int(window)
            xlib.XSendEvent(display, int(window), 0, 0, ctypes.byref(event))
        xlib.XFlush(display)
    finally:
        xlib.XCloseDisplay(display)


def post_form(url, fields):
    """A plain (non-htmx) form post; answers the status of the first response, unredirected."""
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def chromium(url):
    options = ChromeOptions()
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,760"]:
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    service = ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    browser = webdriver.Chrome(service=service, options=options)
    browser.get(url)
    return browser


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="folder with blanket-desktop and blanket")
    parser.add_argument("--artifacts", required=True, help="folder for screenshots and logs")
    parser.add_argument("--latency", type=int, default=0, help="also measure N changes")
    arguments = parser.parse_args()
    binary = os.path.abspath(os.path.join(arguments.bin_dir, "blanket-desktop"))
    headless = os.path.abspath(os.path.join(arguments.bin_dir, "blanket"))
    os.makedirs(arguments.artifacts, exist_ok=True)
    results = []

    def journey(name):
        def run(body):
            # A journey that fails is tried once more and the first failure is printed: the
            # notification journeys race dunst's own timing on a loaded machine (seen once in
            # CI: the context menu did not open). A second failure fails the suite.
            for attempt in (1, 2):
                started = time.monotonic()
                try:
                    body()
                    results.append((name, None))
                    retried = " after a retry" if attempt == 2 else ""
                    print(f"ok      {name} ({time.monotonic() - started:.1f} s{retried})", flush=True)
                    return
                except Exception as error:  # noqa: BLE001 - every journey reports, then the next runs
                    if attempt == 1:
                        print(f"RETRY   {name}: {error}", flush=True)
                        traceback.print_exc()
                        continue
                    results.append((name, error))
                    print(f"FAILED  {name}: {error}", flush=True)
                    traceback.print_exc()
        return run

    desktop = Desktop(os.path.abspath(arguments.artifacts))
    app = None
    browser = None
    try:
        app = App(desktop, binary)

        @journey("the window shows the tasks page, live over Tauri events, granted only its own commands")
        def _():
            assert app.window.find_element(By.TAG_NAME, "h1").text == "Tasks"
            transport = app.window.execute_script("return window.blanketLive && window.blanketLive.transport;")
            assert transport == "tauri", f"the page's live transport is {transport!r}"
            # The page may call the shell's own commands, and nothing else.
            invoke = ("const done = arguments[arguments.length - 1];"
                      "window.__TAURI__.core.invoke(arguments[0], arguments[1])"
                      ".then(v => done({ok: v}), e => done({error: String(e && e.message || JSON.stringify(e))}));")
            own = app.window.execute_async_script(invoke, "retry_task", {"taskId": "0" * 24})
            assert "not found" in own.get("error", ""), f"retry_task answered {own}"
            other = app.window.execute_async_script(invoke, "plugin:window|title", {"label": "main"})
            assert "not allowed" in other.get("error", ""), f"a window command answered {other}"
            # The bridge and the tray each hold one nudge subscription; an SSE stream would add one.
            wait_for("the window's subscriptions", lambda: app.status()["subscribers"]["tasks"] == 2)
            app.screenshot("window-light.png")

        @journey("a task submitted with curl appears in the window and in chromium, without reload")
        def _():
            nonlocal browser
            browser = chromium(f"{app.base}/ui/")
            wait_for("chromium's live stream", lambda: browser.execute_script(
                "return document.getElementById('live-status').dataset.state;") == "live")
            assert app.status()["subscribers"]["tasks"] == 3, "chromium's page adds one SSE stream"
            for page in (app.window, browser):
                page.execute_script(WATCH_ROWS)
            before = int(time.time() * 1000)
            task = app.submit("echo_task", {"NAME": "desktop"})
            short_id = task["id"][:8]
            shown = {}
            for label, page in (("window", app.window), ("chromium", browser)):
                stamp = wait_for(f"the task in the {label}", lambda: first_change_with(page, short_id, before))
                shown[label] = stamp - before
            print(f"        visible after: {shown} ms", flush=True)
            assert all(delay <= LIVE_BOUND_MS for delay in shown.values()), f"slower than {LIVE_BOUND_MS} ms: {shown}"
            browser.quit()
            browser = None

        @journey("the window's new-task form submits a task with a file (multipart)")
        def _():
            upload = os.path.join(desktop.work, "words.txt")
            with open(upload, "w") as words:
                words.write("one two three four five\n")
            app.window.get(f"{app.base}/ui/tasks/new")
            Select(wait_for("the type select", lambda: app.window.find_element(By.ID, "new-task-type"))
                   ).select_by_value("wordcount_task")
            wait_for("the INPUT_FILE field", lambda: app.window.find_element(By.NAME, "env.INPUT_FILE")
                     ).send_keys("words.txt")
            # The file goes from this machine's path, as typed into the file chooser.
            app.window.file_detector = UselessFileDetector()
            app.window.find_element(By.ID, "new-task-files").send_keys(upload)
            app.window.find_element(By.CSS_SELECTOR, 'button[aria-label="launch task"]').click()
            task = wait_for("the submitted task", lambda: [t for t in app.tasks() if t["type"] == "wordcount_task"])[0]
            wait_for("the word count", lambda: http("GET", f"{app.base}/task/{task['id']}")["state"] == "SUCCESS")
            with urllib.request.urlopen(f"{app.base}/task/{task['id']}/log/tail", timeout=10) as tail:
                counted = tail.read().decode()
            assert counted.startswith("5 "), f"wc printed {counted!r}"
            app.window.get(f"{app.base}/ui/")
            wait_for("the tasks page again", lambda: app.window.find_element(By.ID, "tasks-rows"))

        @journey("a task ending ERROR notifies; its Retry resubmits it, its Show opens its page")
        def _():
            time.sleep(BURST_SETTLE)  # Earlier finishes must not join this one's burst.
            seen = desktop.seen()
            task = app.submit("fail_task")
            wait_for("the ERROR notification", lambda: desktop.displayed() >= 1, interval=0.2)
            assert http("GET", f"{app.base}/task/{task['id']}")["state"] == "ERROR"
            desktop.invoke_action("Retry")
            try:
                retried = wait_for("the retried task", lambda: [t for t in app.tasks()
                                                                if t["type"] == "fail_task" and t["id"] != task["id"]])
            except AssertionError as error:
                raise AssertionError(f"{error}; the context menu offered {desktop.menu_offered()!r}") from None
            offered = desktop.menu_offered()
            for action in ("#Show (fail_task failed)", "#Open folder (fail_task failed)", "#Retry (fail_task failed)"):
                assert action in offered, f"the notification offers {offered!r}"
            assert len(retried) == 1, f"one retry, got {len(retried)}"
            wait_for("the retry to end", lambda: http("GET", f"{app.base}/task/{retried[0]['id']}")["state"] == "ERROR")
            # The retry's own notice comes after the burst's quiet time (2 s); its "Show" opens
            # its page. The first notice goes now, so the menu offers the second one only.
            desktop.dunstctl("close-all")
            wait_for("the retry's notification", lambda: desktop.displayed() >= 1, interval=0.1)
            desktop.invoke_action("Show")
            wait_for("the retried task's page in the window",
                     lambda: app.window.current_url.endswith(f"/ui/tasks/{retried[0]['id']}"))
            app.window.get(f"{app.base}/ui/")
            desktop.dunstctl("close-all")
            # The first one closed when its action ran; the retry's own is in the history.
            received = desktop.closed_since(seen)
            assert "fail_task failed" in received, f"the daemon received {received}"

        @journey("a burst of 20 finishes gives one summary notification")
        def _():
            time.sleep(BURST_SETTLE)
            seen = desktop.seen()
            ids = [app.submit("echo_task")["id"] for _ in range(20)]
            wait_for("20 finishes", lambda: all(
                http("GET", f"{app.base}/task/{task_id}")["state"] == "SUCCESS" for task_id in ids), interval=0.2)
            time.sleep(BURST_SETTLE)
            desktop.dunstctl("close-all")
            received = desktop.closed_since(seen)
            assert received == ["20 tasks finished"], f"the daemon received {received}"

        @journey("the Settings page saves the notify mode live into the config file; env keys are locked")
        def _():
            config_file = os.path.join(desktop.home, ".config", "blanket", "config.toml")
            app.window.get(f"{app.base}/ui/settings")
            form = wait_for("the settings form", lambda: app.window.find_element(By.ID, "notify-settings"))
            threshold = form.find_element(By.ID, "notify-min-seconds")
            assert not threshold.is_enabled(), "BLANKET_NOTIFY_MIN_SECONDS locks the threshold"
            hint = form.find_element(By.ID, "notify-min-seconds-hint").text
            assert "BLANKET_NOTIFY_MIN_SECONDS" in hint, hint
            form.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="none"]').click()
            form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
            wait_for("the saved notice", lambda: "Saved." in app.window.find_element(By.ID, "notify-settings").text)
            with open(config_file) as saved:
                assert 'mode = "none"' in saved.read()
            # Live, no restart: a failure with mode "none" raises nothing.
            time.sleep(BURST_SETTLE)
            seen = desktop.seen()
            task = app.submit("fail_task")
            wait_for("the task to fail", lambda: http("GET", f"{app.base}/task/{task['id']}")["state"] == "ERROR")
            time.sleep(BURST_SETTLE)
            assert desktop.displayed() == 0 and not desktop.closed_since(seen), "mode none still notified"
            # A bad value is refused with a message, and the plain form post says so too.
            assert post_form(f"{app.base}/ui/settings", {"mode": "loud"}) == 400
            http("PUT", f"{app.base}/config/notify", {"mode": "all"})
            with open(config_file) as saved:
                assert 'mode = "all"' in saved.read()

        @journey("start at login is off, and the Settings page turns its autostart entry on and off")
        def _():
            entry = os.path.join(desktop.home, ".config", "autostart", "Blanket.desktop")
            app.window.get(f"{app.base}/ui/settings")
            box = wait_for("the start-at-login box to be read", lambda: [
                element for element in app.window.find_elements(By.ID, "autostart") if element.is_enabled()])[0]
            assert not box.is_selected() and not os.path.exists(entry), "start at login is off by default"
            box.click()
            wait_for("the autostart entry", lambda: os.path.exists(entry))
            with open(entry) as desktop_entry:
                assert app.binary in desktop_entry.read(), "the entry starts this app"
            wait_for("the box to show it on", lambda: app.window.find_element(By.ID, "autostart").is_selected())
            app.window.find_element(By.ID, "autostart").click()
            wait_for("the autostart entry to go", lambda: not os.path.exists(entry))
            app.window.get(f"{app.base}/ui/")
            wait_for("the tasks page again", lambda: app.window.find_element(By.ID, "tasks-rows"))

        @journey("closing the window hides it to the tray; the server keeps serving")
        def _():
            pid = app.pid()
            assert window_visible(desktop), "the window is visible before it is closed"
            seen = desktop.seen()
            close_like_a_window_manager(desktop)
            wait_for("the window to hide", lambda: not window_visible(desktop))
            wait_for("the one-time tray hint", lambda: desktop.displayed() >= 1)
            desktop.dunstctl("close-all")
            hint = desktop.closed_since(seen)
            assert hint == ["Blanket is still running"], f"the daemon received {hint}"
            assert app.pid() == pid
            assert http("GET", f"{app.base}/version")["name"] == "blanket"
            task = app.submit("echo_task")
            wait_for("a task to run with the window hidden",
                     lambda: http("GET", f"{app.base}/task/{task['id']}")["state"] == "SUCCESS")
            # The window shows itself when its first page has loaded, and only then: a page
            # loaded while it is in the tray leaves it there.
            loads = app.page_loads()
            app.window.execute_script("location.reload();")
            wait_for("the app to see the page load again", lambda: app.page_loads() > loads)
            assert not window_visible(desktop), "a page load showed the window the user closed"

        @journey("a second launch shows the first window and starts no second coordinator")
        def _():
            started = app.status()["startedTs"]
            pid = app.pid()
            second = subprocess.run([binary], env=app.env, capture_output=True, timeout=DEADLINE)
            assert second.returncode == 0, second.stderr.decode()
            assert app.pid() == pid and app.status()["startedTs"] == started
            wait_for("the window to show again", lambda: window_visible(desktop))

        @journey("Quit stops gracefully: no worker left, the running task recorded with the reason")
        def _():
            nonlocal app
            running = app.submit("sleep_task", {"DURATION": "60"})
            wait_for("the task to run", lambda: http("GET", f"{app.base}/task/{running['id']}")["state"] == "RUNNING")
            workers = app.worker_pids()
            assert len(workers) == 2, f"two local workers, found {workers}"
            # The tray's Quit and SIGTERM run the same `lifecycle::quit` (no tray host to click here).
            pid = app.pid()
            os.kill(pid, signal.SIGTERM)
            wait_for("the app to exit", lambda: not os.path.exists(f"/proc/{pid}"))
            wait_for("the workers to exit", lambda: not app.worker_pids())
            data_dir, port = app.data_dir, app.port
            app.end_session()
            # Start again, dark this time, and read what was recorded.
            app = App(desktop, binary, {"GTK_THEME": "Adwaita:dark"}, data_dir=data_dir, port=port)
            stopped = http("GET", f"{app.base}/task/{running['id']}")
            assert stopped["state"] == "STOPPED", stopped
            assert "shut down" in (stopped["reason"] or ""), stopped
            app.screenshot("window-dark.png")

        @journey("with a headless coordinator on the port, the window shows it instead")
        def _():
            nonlocal app
            app.end_session()
            port = free_port()
            data_dir = tempfile.mkdtemp(prefix="headless-", dir=desktop.work)
            # The attached app notifies per that coordinator's settings, sent on its stream.
            serve_env = dict(desktop.env, BLANKET_NOTIFY_MIN_SECONDS="0", BLANKET_NOTIFY_WHEN_FOCUSED="true")
            serve = subprocess.Popen([headless, "serve", "--port", str(port), "--data-dir", data_dir, "--workers", "0"],
                                     env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for("blanket serve", lambda: http("GET", f"http://127.0.0.1:{port}/version"))
                started = http("GET", f"http://127.0.0.1:{port}/ops/status/")["startedTs"]
                app = App(desktop, binary, port=port)
                assert app.pid() == serve.pid, "the port still belongs to blanket serve"
                assert app.status()["startedTs"] == started
                assert app.window.current_url.startswith(f"http://127.0.0.1:{port}/ui")
                # The app follows that server's one event stream, relayed into its own hub.
                # One connection, the event stream (one subscription of each kind); the window
                # itself opens no list stream.
                wait_for("the app's event stream", lambda: app.status()["subscribers"]["events"] == 1)
                subscribers = app.status()["subscribers"]
                assert subscribers == {"tasks": 1, "workers": 1, "events": 1}, subscribers
                task = app.submit("fail_task")
                wait_for("the headless coordinator's task in the window", lambda: task["id"][:8] in
                         app.window.find_element(By.ID, "tasks-rows").text)
                # No worker runs there: play one, so the task fails and the app notifies.
                time.sleep(BURST_SETTLE)
                seen = desktop.seen()
                worker = "ab" * 12
                http("PUT", f"{app.base}/worker/{worker}", {"tags": ["bash", "unix"], "pid": 1, "checkInterval": 2})
                claimed = http("POST", f"{app.base}/task/claim/{worker}")
                assert claimed["id"] == task["id"], claimed
                http("PUT", f"{app.base}/task/{task['id']}/run?pid=1")
                http("PUT", f"{app.base}/task/{task['id']}/finish?state=ERROR&exitCode=1")
                wait_for("the attached app's notification", lambda: desktop.displayed() >= 1, interval=0.2)
                desktop.dunstctl("close-all")
                received = desktop.closed_since(seen)
                assert "fail_task failed" in received, f"the daemon received {received}"
            finally:
                app.end_session()
                app = None
                serve.terminate()
                serve.wait(20)

        if arguments.latency:
            app = App(desktop, binary)
            app.window.execute_script(WATCH_ROWS)
            delays = []
            for _ in range(arguments.latency):
                # Each change is timed in the page, when the rows change; polling only reads it.
                app.window.execute_script("window.__rowChanges.length = 0;")
                before = int(time.time() * 1000)
                task = app.submit("echo_task")
                stamp = wait_for("the task in the window", lambda: first_change_with(app.window, task["id"][:8], before),
                                 interval=0.05)
                delays.append(stamp - before)
                wait_for("the task to end", lambda: http("GET", f"{app.base}/task/{task['id']}")["state"] == "SUCCESS")
            delays.sort()
            figures = {"samples": len(delays), "p50_ms": delays[len(delays) // 2],
                       "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))], "max_ms": delays[-1]}
            print(f"latency: {figures}", flush=True)
            with open(os.path.join(arguments.artifacts, "latency.json"), "w") as out:
                json.dump(figures, out)
    finally:
        if browser is not None:
            browser.quit()
        if app is not None:
            app.end_session()
        desktop.stop()

    failed = sum(1 for _, error in results if error is not None)
    print(f"desktop window: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
