#!/usr/bin/env python3
"""Measures the worker runtime's figures against a release `blanket serve`.

Prints, with their goals: submit -> the task's process running (idle worker), trivial tasks
end to end with 4 local workers, cancel -> process group gone, and log line written -> SSE
client. Standard library only; starts the server itself on a temp data dir and a free port.

    cargo build --release --bin blanket && python3 scripts/worker_figures.py
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLANKET = os.environ.get("BLANKET_BIN", os.path.join(ROOT, "target", "release", "blanket"))

TYPES = {
    # Its first act is to record when its process started, in nanoseconds.
    "stamp_task": 'command = "date +%s%N > started"\ntags = ["bash"]\n',
    "true_task": 'command = "true"\ntags = ["bash"]\n',
    "sleep_task": 'command = "sleep 30"\ntags = ["bash"]\n',
    # Prints a line with the time it was written, every 20 ms.
    "ticker_task": 'command = "for i in $(seq 1 100); do echo \\"$(date +%s%N)\\"; sleep 0.02; done"\ntags = ["bash"]\n',
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Server:
    def __init__(self, workers):
        self.dir = tempfile.mkdtemp(prefix="blanket-worker-figures-")
        types = os.path.join(self.dir, "types")
        os.makedirs(types)
        for name, text in TYPES.items():
            with open(os.path.join(types, name + ".toml"), "w") as file:
                file.write(text)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HOME=self.dir, XDG_CONFIG_HOME=os.path.join(self.dir, "config"))
        env.pop("RUST_LOG", None)
        self.process = subprocess.Popen(
            [BLANKET, "serve", "--port", str(self.port), "--data-dir", os.path.join(self.dir, "data"),
             "--types-dir", types, "--workers", str(workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                running = [w for w in self.get("/worker/") if w["status"] == "running"]
                if len(running) >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("the server did not start with its workers")

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return json.loads(text) if text else None

    def get(self, path):
        return self.request("GET", path)

    def submit(self, task_type):
        return self.request("POST", "/task/", {"type": task_type})

    def wait_state(self, task_id, states, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            task = self.get(f"/task/{task_id}")
            if task["state"] in states:
                return task
            time.sleep(0.002)
        raise SystemExit(f"task {task_id} never reached {states}")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def submit_to_start(server, samples=200):
    latencies = []
    for _ in range(samples):
        before = time.time_ns()
        task = server.submit("stamp_task")
        done = server.wait_state(task["id"], {"SUCCESS", "ERROR"})
        with open(os.path.join(done["resultDir"], "started")) as file:
            started = int(file.read().strip())
        latencies.append((started - before) / 1e6)
    return latencies


def throughput(server, count=1000):
    started = time.time()
    ids = [server.submit("true_task")["id"] for _ in range(count)]
    while True:
        finished = server.request("GET", "/task/?states=SUCCESS,ERROR&count=true")
        if finished >= count:
            break
        time.sleep(0.01)
    return count / (time.time() - started), len(ids)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cancel_latency(server, samples=20):
    latencies = []
    for _ in range(samples):
        task = server.submit("sleep_task")
        running = server.wait_state(task["id"], {"RUNNING"})
        pgid = running["pid"]
        before = time.time()
        server.request("PUT", f"/task/{task['id']}/cancel")
        while group_alive(pgid) and time.time() - before < 10:
            time.sleep(0.001)
        latencies.append((time.time() - before) * 1000)
    return latencies


def log_latency(server):
    task = server.submit("ticker_task")
    latencies = []
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"GET /task/{task['id']}/log HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    buffer = b""
    deadline = time.time() + 30
    sock.settimeout(1)
    while time.time() < deadline and len(latencies) < 100:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        received = time.time_ns()
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            text = line.decode(errors="replace").strip()
            if text.startswith("data:") and text[5:].strip().isdigit():
                latencies.append((received - int(text[5:].strip())) / 1e6)
    sock.close()
    return latencies


def report(name, values, unit, goal):
    print(f"{name}: p50 {statistics.median(values):.2f} {unit}, p99 {percentile(values, 0.99):.2f} {unit}"
          f" ({len(values)} samples) | goal {goal}")


def main():
    if not os.path.exists(BLANKET):
        raise SystemExit(f"{BLANKET} is missing: cargo build --release --bin blanket first")
    one = Server(workers=1)
    try:
        report("submit -> process running (1 idle worker)", submit_to_start(one), "ms", "p50 <= 5 ms, p99 <= 20 ms")
        report("cancel -> process group gone", cancel_latency(one), "ms", "p99 <= 1000 ms")
        report("log line written -> SSE client", log_latency(one), "ms", "p99 <= 50 ms")
    finally:
        one.stop()
    four = Server(workers=4)
    try:
        rate, count = throughput(four)
        print(f"trivial tasks end to end, 4 local workers: {rate:.0f} tasks/s ({count} tasks) | goal >= 200 tasks/s")
    finally:
        four.stop()


if __name__ == "__main__":
    sys.exit(main())
