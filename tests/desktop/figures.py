#!/usr/bin/python3
"""Figures of the desktop app, measured on the build the .deb ships (target/dist) under Xvfb.

- cold start, as a user's launcher starts the app: from just before the exec to the first
  frame on the screen that shows the page in the window (pixels read from the X server), and
  to the line the app (and the bare window) prints when its page has loaded; and the same
  started by WebDriver, up to the page's own load event (navigation timing);
- idle memory: PSS of the app and every process under it (WebKit's web and network processes,
  the local workers) after it has sat idle, and (as root) their resident pages with each page
  counted once, which other programs on the machine do not change as they change PSS; plus
  their wake-ups per second while idle;
  the same for a bare Tauri window, measured in the same run;
- change -> visible in the window: curl submit to row shown, timed in the page, p50/p99, with
  where the time went (the Tauri event's arrival, the rows request);
- sizes: the release binary and, when given (--deb), the .deb.

The yardstick is the bare Tauri window of tests/desktop/hello-tauri (the same tauri version,
features and profile, a static page): built here, in its own target dir beside --bin-dir's
(target/hello-tauri), unless --hello names a built one or --no-hello skips it.

Usage: tests/desktop/figures.py --bin-dir target/dist [--hello PATH | --no-hello] [--deb PATH] --out FILE.json
"""

import argparse
import ctypes
import ctypes.util
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import journeys  # noqa: E402 - the shared display, D-Bus, dunst and driver set-up

HELLO_CRATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hello-tauri")

# Records, in the window, when each `tasks-changed` Tauri event arrived and when each rows
# request ran, to split a change's delay into its steps.
TRACE_LIVE = """
window.__tasksEvents = [];
window.__TAURI__.event.listen('tasks-changed', () => window.__tasksEvents.push(Date.now()));
performance.setResourceTimingBufferSize(10000);
return true;
"""
# The trace of the change submitted at `arguments[0]` (ms since the epoch), then a clean slate.
READ_TRACE = """
const since = arguments[0];
const events = window.__tasksEvents.filter(stamp => stamp >= since);
const requests = performance.getEntriesByType('resource')
  .filter(entry => entry.name.includes('/ui/partials/tasks-rows'))
  .map(entry => [performance.timeOrigin + entry.startTime, performance.timeOrigin + entry.responseEnd])
  .filter(([start]) => start >= since);
window.__tasksEvents.length = 0;
performance.clearResourceTimings();
return {events: events, requests: requests};
"""

IDLE_SETTLE = 15.0  # seconds the app sits before its memory is read
WAKEUP_WINDOW = 10.0  # seconds over which idle wake-ups are counted


def boot_time():
    """When the machine booted, in seconds since the epoch. Not /proc/stat's `btime`: that is
    whole seconds, which put every start up to a second late."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def start_epoch_ms(pid):
    """When the process was exec'd, in ms since the epoch (to the 10 ms of a clock tick)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[19])  # starttime: field 22, counted after the command name
    return (boot_time() + ticks / os.sysconf("SC_CLK_TCK")) * 1000


def descendants(root):
    """`root` and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except OSError:
                continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_pages(pid, shared_frames):
    """KiB resident only in `pid`; adds the frames of its shared pages to `shared_frames`.

    Pages no other process maps are counted from smaps; the frames of mappings with shared
    pages are read from /proc/PID/pagemap (root only), so a page several processes of the app
    share is counted once, and sharing with processes outside the app changes nothing."""
    private_kib = 0
    pagemap = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    with open(f"/proc/{pid}/smaps") as smaps:
        start = end = rss = shared = 0

        def close_mapping():
            nonlocal private_kib
            if shared == 0:
                private_kib += rss
            else:
                entries = os.pread(pagemap, (end - start) // PAGE * 8, start // PAGE * 8)
                for index in range(0, len(entries), 8):
                    entry = int.from_bytes(entries[index:index + 8], "little")
                    if entry >> 63:  # present
                        shared_frames.add(entry & ((1 << 55) - 1))

        for line in smaps:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                if end:
                    close_mapping()
                low, high = head.split("-")
                start, end, rss, shared = int(low, 16), int(high, 16), 0, 0
            elif head == "Rss:":
                rss = int(line.split()[1])
            elif head in ("Shared_Clean:", "Shared_Dirty:"):
                shared += int(line.split()[1])
        if end:
            close_mapping()
    os.close(pagemap)
    return private_kib


def switches(pids):
    """Context switches so far of every thread of `pids`, by (pid, tid)."""
    counts = {}
    for pid in pids:
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/status") as status:
                    counts[(pid, task)] = sum(
                        int(line.split()[1]) for line in status
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
        except OSError:
            continue
    return counts


def idle_figures(desktop, command, env):
    """Starts `command` directly (no WebDriver), lets it idle, and reads its processes."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(IDLE_SETTLE)
        pids = descendants(process.pid)
        before = switches(pids)
        time.sleep(WAKEUP_WINDOW)
        after = switches(pids)
        # Threads that came or went in between are left out rather than counted as negative.
        woken = sum(after[key] - before[key] for key in after.keys() & before.keys())
        # Frame numbers in /proc/PID/pagemap read as 0 for anyone but root.
        shared_frames = set() if os.geteuid() == 0 else None
        private_kib = sum(resident_pages(pid, shared_frames) for pid in pids) if shared_frames is not None else 0
        processes = []
        for pid in pids:
            with open(f"/proc/{pid}/cmdline") as cmdline:
                words = cmdline.read().split("\0")
            name = os.path.basename(words[0]) + (" worker" if "worker" in words[1:2] else "")
            processes.append({"name": name, "pss_mib": round(pss_kib(pid) / 1024, 1),
                              "rss_mib": round(rss_kib(pid) / 1024, 1)})
        figures = {
            "processes": processes,
            "pss_mib": round(sum(process["pss_mib"] for process in processes), 1),
            "rss_mib": round(sum(process["rss_mib"] for process in processes), 1),
            "wakeups_per_second": round(woken / WAKEUP_WINDOW, 1),
        }
        if shared_frames is not None:
            # Every page any of them maps, counted once: unlike PSS, not lowered by other
            # programs that share the same libraries (another WebKit app, a parallel test).
            figures["resident_once_mib"] = round((private_kib + len(shared_frames) * PAGE // 1024) / 1024, 1)
        return figures
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def cold_starts(desktop, binary, count, ready=(journeys.By.ID, "tasks-rows")):
    """From exec to the first page's load event, `count` times, each a fresh start."""
    starts = []
    for _ in range(count):
        app = journeys.App(desktop, binary, ready=ready)
        try:
            loaded = app.window.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return performance.timeOrigin + (n.loadEventEnd || n.domContentLoadedEventEnd);")
            pid = int(subprocess.run(["pgrep", "-x", "-f", os.path.abspath(binary)], capture_output=True,
                                     text=True, check=True).stdout.split()[0])
            starts.append(loaded - start_epoch_ms(pid))
        finally:
            app.end_session()
    return summary(starts)


def build_hello(bin_dir):
    """Builds the bare Tauri window in target/hello-tauri (beside `bin_dir`'s profile folder),
    with the profile `bin_dir` was built with (its folder's name: `release`, `dist`)."""
    profile = os.path.basename(os.path.normpath(os.path.abspath(bin_dir)))
    target = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "hello-tauri")
    subprocess.run([os.environ.get("CARGO", "cargo"), "build", "--profile", profile, "--locked", "--features", "prod",
                    "--manifest-path", os.path.join(HELLO_CRATE, "Cargo.toml"), "--target-dir", target],
                   check=True)
    return os.path.join(target, profile, "hello-tauri")


def percentiles(values):
    values = sorted(values)
    return {"p50": round(values[len(values) // 2]), "p99": round(values[min(len(values) - 1, int(len(values) * 0.99))]),
            "max": round(values[-1])}


def change_latency(app, changes):
    """Submits `changes` tasks one at a time; when each showed in the window, and its steps."""
    app.window.execute_script(journeys.WATCH_ROWS)
    app.window.execute_script(TRACE_LIVE)
    delays, to_event, to_request, request = [], [], [], []
    for _ in range(changes):
        app.window.execute_script("window.__rowChanges.length = 0;")
        before = int(time.time() * 1000)
        task = app.submit("echo_task")
        stamp = journeys.wait_for("the task in the window", lambda: journeys.first_change_with(
            app.window, task["id"][:8], before), interval=0.05)
        delays.append(stamp - before)
        trace = app.window.execute_script(READ_TRACE, before)
        if trace["events"]:
            to_event.append(trace["events"][0] - before)
        if trace["requests"]:
            start, end = trace["requests"][0]
            to_request.append(start - before)
            request.append(end - start)
        journeys.wait_for("the task to end", lambda: journeys.http(
            "GET", f"{app.base}/task/{task['id']}")["state"] == "SUCCESS")
    figures = {"samples": len(delays), **percentiles(delays)}
    # Each step from the submit: the Tauri event in the page, the rows request sent, its length.
    for name, values in (("event_arrived", to_event), ("request_sent", to_request), ("request_took", request)):
        if values:
            figures[name] = percentiles(values)
    return figures


PAGE_LOADED = "page loaded in the window"
# The window's top-left corner, where the page's brand and menu are: Xvfb runs no window
# manager, so a new window opens at 0,0. Blank it is one colour; once the page is painted its
# text gives it many.
PAINTED_REGION = (0, 0, 240, 40)
PAINTED_COLOURS = 20


class _XImage(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.c_void_p), ("byte_order", ctypes.c_int),
                ("bitmap_unit", ctypes.c_int), ("bitmap_bit_order", ctypes.c_int),
                ("bitmap_pad", ctypes.c_int), ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int),
                ("bits_per_pixel", ctypes.c_int)]


class Screen:
    """Pixels of the display, read from the X server: what a user would see."""

    def __init__(self, display):
        self.xlib = ctypes.CDLL(ctypes.util.find_library("X11"))
        self.xlib.XOpenDisplay.restype = ctypes.c_void_p
        self.xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.xlib.XDefaultRootWindow.restype = ctypes.c_ulong
        self.xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        self.xlib.XGetImage.restype = ctypes.POINTER(_XImage)
        self.xlib.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                                        ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
        self.xlib.XDestroyImage.argtypes = [ctypes.POINTER(_XImage)]
        self.xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.display = self.xlib.XOpenDisplay(display.encode())
        if not self.display:
            raise AssertionError(f"cannot open the display {display}")
        self.root = self.xlib.XDefaultRootWindow(self.display)

    def colours(self, region):
        """How many distinct colours the screen shows in `region` (x, y, width, height)."""
        x, y, width, height = region
        image = self.xlib.XGetImage(self.display, self.root, x, y, width, height, 0xFFFFFFFF, 2)  # ZPixmap
        try:
            pixels = ctypes.string_at(image.contents.data, image.contents.bytes_per_line * height)
            step = image.contents.bits_per_pixel // 8
        finally:
            self.xlib.XDestroyImage(image)
        return len({pixels[index:index + step] for index in range(0, len(pixels), step)})

    def close(self):
        self.xlib.XCloseDisplay(self.display)


def direct_cold_starts(desktop, binary, count):
    """Fresh starts without WebDriver, as a user's launcher starts the app: from just before the
    exec to the first screen frame showing the page in the window (`count` samples), and to the
    app's PAGE_LOADED line."""
    screen = Screen(desktop.env["DISPLAY"])
    painted, loaded = [], []
    try:
        for index in range(count):
            wait_for_blank = lambda: screen.colours(PAINTED_REGION) == 1  # noqa: E731
            journeys.wait_for("the screen to be blank before a start", wait_for_blank)
            env = dict(desktop.env)
            env.update({"BLANKET_PORT": str(journeys.free_port()), "WEBKIT_DISABLE_DMABUF_RENDERER": "1",
                        "BLANKET_DATA_DIR": os.path.join(desktop.work, f"direct-{index}"), "RUST_LOG": "info"})
            lines = queue.Queue()
            started = time.time()
            process = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            reader = threading.Thread(target=lambda: [lines.put((time.time(), line)) for line in process.stdout],
                                      daemon=True)
            reader.start()
            try:
                # Polled every 5 ms: often enough to time a start, seldom enough that the X
                # server's copying of the pixels does not slow the app's own drawing.
                shown = journeys.wait_for(f"{binary} to show its page", lambda: (
                    screen.colours(PAINTED_REGION) >= PAINTED_COLOURS and time.time()), interval=0.005)
                painted.append((shown - started) * 1000)
                loaded_at = journeys.wait_for("the page-loaded line", lambda: next(
                    (at for at, line in iter_queue(lines) if PAGE_LOADED in line), None))
                loaded.append((loaded_at - started) * 1000)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                reader.join(timeout=5)
    finally:
        screen.close()
    return {**summary(painted), "page_loaded": summary(loaded)}


def iter_queue(lines):
    """What `lines` holds now, without waiting."""
    while True:
        try:
            yield lines.get_nowait()
        except queue.Empty:
            return


def summary(values):
    return {"median": round(statistics.median(values)), "max": round(max(values)),
            "samples": [round(value) for value in values]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    yardstick = parser.add_mutually_exclusive_group()
    yardstick.add_argument("--hello", help="a built bare Tauri window to compare with (default: build it)")
    yardstick.add_argument("--no-hello", action="store_true", help="measure without the bare Tauri window")
    parser.add_argument("--deb", help="the built .deb")
    parser.add_argument("--starts", type=int, default=5, help="starts under WebDriver")
    parser.add_argument("--direct-starts", type=int, default=10, help="starts as a launcher starts it")
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--out", required=True)
    arguments = parser.parse_args()
    binary = os.path.abspath(os.path.join(arguments.bin_dir, "blanket-desktop"))
    artifacts = os.path.dirname(os.path.abspath(arguments.out))
    os.makedirs(artifacts, exist_ok=True)
    figures = {"binary_mib": round(os.path.getsize(binary) / 2**20, 1)}
    if arguments.deb:
        figures["deb_mib"] = round(os.path.getsize(arguments.deb) / 2**20, 1)

    hello = None if arguments.no_hello else os.path.abspath(arguments.hello or build_hello(arguments.bin_dir))

    desktop = journeys.Desktop(artifacts)
    try:
        figures["cold_start_ms"] = cold_starts(desktop, binary, arguments.starts)
        print(f"cold start: {figures['cold_start_ms']}", flush=True)
        if hello:
            figures["cold_start_hello_world_ms"] = cold_starts(desktop, hello, arguments.starts,
                                                               ready=(journeys.By.TAG_NAME, "h1"))
            print(f"cold start, bare Tauri window: {figures['cold_start_hello_world_ms']}", flush=True)
        figures["cold_start_direct_ms"] = direct_cold_starts(desktop, binary, arguments.direct_starts)
        print(f"cold start without WebDriver: {figures['cold_start_direct_ms']}", flush=True)
        if hello:
            figures["cold_start_direct_hello_world_ms"] = direct_cold_starts(desktop, hello, arguments.direct_starts)
            print(f"cold start without WebDriver, bare Tauri window: "
                  f"{figures['cold_start_direct_hello_world_ms']}", flush=True)

        app = journeys.App(desktop, binary)
        try:
            figures["change_visible_ms"] = change_latency(app, arguments.changes)
            print(f"change -> visible: {figures['change_visible_ms']}", flush=True)
        finally:
            app.end_session()

        env = dict(desktop.env)
        env.update({"BLANKET_PORT": str(journeys.free_port()), "WEBKIT_DISABLE_DMABUF_RENDERER": "1",
                    "BLANKET_DATA_DIR": os.path.join(desktop.work, "idle")})
        figures["idle"] = idle_figures(desktop, [binary], env)
        print(f"idle app: {figures['idle']}", flush=True)
        if hello:
            figures["idle_hello_world"] = idle_figures(desktop, [hello], env)
            print(f"idle bare Tauri window: {figures['idle_hello_world']}", flush=True)
            figures["pss_ratio"] = round(figures["idle"]["pss_mib"] / figures["idle_hello_world"]["pss_mib"], 2)
            if "resident_once_mib" in figures["idle"]:
                figures["resident_once_ratio"] = round(
                    figures["idle"]["resident_once_mib"] / figures["idle_hello_world"]["resident_once_mib"], 2)
    finally:
        desktop.stop()
    with open(arguments.out, "w") as out:
        json.dump(figures, out, indent=2)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
