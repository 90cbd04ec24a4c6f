#!/usr/bin/python3
"""Figures of the desktop app, measured on a release build under Xvfb.

- cold start: from the app's exec to the window's tasks page loaded (the page's own
  navigation timing, so WebDriver's overhead is not counted), over several fresh starts;
- idle memory: PSS of the app and every process under it (WebKit's web and network processes,
  the local workers) after it has sat idle, plus their wake-ups per second while idle;
  optionally the same for a bare Tauri window (--hello BINARY) measured in the same run;
- change -> visible in the window: curl submit to row shown, timed in the page, p50/p99;
- sizes: the release binary and, when given (--deb), the .deb.

Usage: tests/desktop/figures.py --bin-dir target/release [--hello PATH] [--deb PATH] --out FILE.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import journeys  # noqa: E402 - the shared display, D-Bus, dunst and driver set-up

IDLE_SETTLE = 15.0  # seconds the app sits before its memory is read
WAKEUP_WINDOW = 10.0  # seconds over which idle wake-ups are counted


def boot_time():
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("btime"):
                return int(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


def start_epoch_ms(pid):
    """When the process was exec'd, in ms since the epoch."""
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
        processes = []
        for pid in pids:
            with open(f"/proc/{pid}/cmdline") as cmdline:
                words = cmdline.read().split("\0")
            name = os.path.basename(words[0]) + (" worker" if "worker" in words[1:2] else "")
            processes.append({"name": name, "pss_mib": round(pss_kib(pid) / 1024, 1),
                              "rss_mib": round(rss_kib(pid) / 1024, 1)})
        return {
            "processes": processes,
            "pss_mib": round(sum(process["pss_mib"] for process in processes), 1),
            "rss_mib": round(sum(process["rss_mib"] for process in processes), 1),
            "wakeups_per_second": round(woken / WAKEUP_WINDOW, 1),
        }
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
    return {"median": round(statistics.median(starts)), "max": round(max(starts)),
            "samples": [round(value) for value in starts]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--hello", help="a bare Tauri hello-world binary to compare memory with")
    parser.add_argument("--deb", help="the built .deb")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--out", required=True)
    arguments = parser.parse_args()
    binary = os.path.abspath(os.path.join(arguments.bin_dir, "blanket-desktop"))
    artifacts = os.path.dirname(os.path.abspath(arguments.out))
    os.makedirs(artifacts, exist_ok=True)
    figures = {"binary_mib": round(os.path.getsize(binary) / 2**20, 1)}
    if arguments.deb:
        figures["deb_mib"] = round(os.path.getsize(arguments.deb) / 2**20, 1)

    desktop = journeys.Desktop(artifacts)
    try:
        figures["cold_start_ms"] = cold_starts(desktop, binary, arguments.starts)
        print(f"cold start: {figures['cold_start_ms']}", flush=True)
        if arguments.hello:
            figures["cold_start_hello_world_ms"] = cold_starts(desktop, arguments.hello, arguments.starts,
                                                               ready=(journeys.By.TAG_NAME, "h1"))
            print(f"cold start, bare Tauri window: {figures['cold_start_hello_world_ms']}", flush=True)

        app = journeys.App(desktop, binary)
        try:
            app.window.execute_script(journeys.WATCH_ROWS)
            delays = []
            for _ in range(arguments.changes):
                app.window.execute_script("window.__rowChanges.length = 0;")
                before = int(time.time() * 1000)
                task = app.submit("echo_task")
                stamp = journeys.wait_for("the task in the window", lambda: journeys.first_change_with(
                    app.window, task["id"][:8], before), interval=0.05)
                delays.append(stamp - before)
                journeys.wait_for("the task to end", lambda: journeys.http(
                    "GET", f"{app.base}/task/{task['id']}")["state"] == "SUCCESS")
            delays.sort()
            figures["change_visible_ms"] = {
                "samples": len(delays), "p50": delays[len(delays) // 2],
                "p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))], "max": delays[-1]}
            print(f"change -> visible: {figures['change_visible_ms']}", flush=True)
        finally:
            app.end_session()

        env = dict(desktop.env)
        env.update({"BLANKET_PORT": str(journeys.free_port()), "WEBKIT_DISABLE_DMABUF_RENDERER": "1",
                    "BLANKET_DATA_DIR": os.path.join(desktop.work, "idle")})
        figures["idle"] = idle_figures(desktop, [binary], env)
        print(f"idle app: {figures['idle']}", flush=True)
        if arguments.hello:
            figures["idle_hello_world"] = idle_figures(desktop, [arguments.hello], env)
            print(f"idle bare Tauri window: {figures['idle_hello_world']}", flush=True)
            figures["pss_ratio"] = round(figures["idle"]["pss_mib"] / figures["idle_hello_world"]["pss_mib"], 2)
    finally:
        desktop.stop()
    with open(arguments.out, "w") as out:
        json.dump(figures, out, indent=2)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
