"""Serving over HTTP: a bounded load test of ``dlsuite serve`` on loopback, per task at batch 1.

    .venv/bin/python benchmarks/serving.py --write-results

``dlsuite serve`` runs in its own process on 127.0.0.1 (a free port). For every signature
of every task, K client threads (``http.client``, one keep-alive connection each) send N
``:predict`` requests in all, each one test example in row form (``{"instances": [x]}``),
after a warm-up of 20 untimed requests; then they stop. Per signature: the request size,
errors (any answer but 200 with one prediction, or a failed connection), p50 and p99
latency (request sent to answer read), throughput (N / wall time of the N requests), and
the median in-process latency of the same signature called directly on the same example
(``tf.saved_model.load``, 200 calls), so the HTTP + JSON cost shows beside the model's.

The examples are each task's first test example, from the data of the export's own config
(``task.verification_inputs``): digits pixels and their PNG, a generated review, an eSpeak
clip as float32 samples and as a WAV file, a sensor window, a transaction.

Options:
    --model-root DIR   serve the exports there (each task's newest version); default: train each
                       task's default network for 3 epochs into a temporary export root first
    --tasks a,b        a subset of the tasks (default: all five)
    --requests N       timed requests per signature (default 2000)
    --clients K        concurrent clients (default 4)
    --max-seconds S    stop a signature's load after S seconds even if N are not done (default 300)
    --write-results    rewrite the "Serving over HTTP" section of benchmarks/RESULTS.md

The table goes to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import logging
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import common

NAME = "serving"
TASKS = ("image_classification", "sentiment", "speech", "anomaly", "fraud")
WARMUP_REQUESTS = 20
DIRECT_CALLS = 200
ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("serving-benchmark")


def train_exports(tasks: Sequence[str], out: Path) -> Path:
    """Train each task's default network for 3 epochs (image_classification: the mlp); returns the export root."""
    root = out / "saved_models"
    for task in tasks:
        network = ["--arch", "mlp"] if task == "image_classification" else []
        command = [sys.executable, "-m", "dlsuite.cli", "run", task, *network, "--set", "train.epochs=3",
                   "--set", f"export.root={root}", "--run-dir", str(out / "runs" / task)]
        log.info("training %s: %s", task, shlex.join(command))
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return root


def newest_export(root: Path, task: str) -> Path:
    versions = [p for p in (root / task).iterdir() if p.name.isdigit()] if (root / task).is_dir() else []
    if not versions:
        raise SystemExit(f"no export of {task} under {root}; run `dlsuite run {task}` or leave out --model-root")
    return max(versions, key=lambda p: int(p.name))


def example_requests(export_dir: Path) -> dict[str, dict[str, Any]]:
    """Signature -> one test example of the export's own data as a row-form request body."""
    from dlsuite import export, tasks

    metadata = export.load_metadata(export_dir)
    task = tasks.get(metadata["task"])
    inputs = task.verification_inputs(task.load(metadata["config"]), metadata)
    bodies = {}
    for signature, kwargs in inputs.items():
        row = {name: json_value(values[0]) for name, values in kwargs.items()}
        instance = next(iter(row.values())) if len(row) == 1 else row
        bodies[signature] = {"signature_name": signature, "instances": [instance]}
    return bodies


def json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    array = np.asarray(value)
    if array.dtype == object:
        return [json_value(v) for v in array.tolist()]
    return array.tolist()


def direct_latency_ms(export_dir: Path, body: dict[str, Any]) -> float:
    """Median latency of the signature called in this process on the same example."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(export_dir)).signatures[body["signature_name"]]
    specs = fn.structured_input_signature[1]
    instance = body["instances"][0]
    row = instance if len(specs) > 1 else {next(iter(specs)): instance}

    def tensor(value: Any, spec: tf.TensorSpec) -> tf.Tensor:
        if isinstance(value, dict):
            value = base64.b64decode(value["b64"])
        return tf.constant([value], dtype=spec.dtype)

    args = {name: tensor(row[name], spec) for name, spec in specs.items()}
    return common.median_ms(lambda: fn(**args), DIRECT_CALLS)


class Server:
    """``dlsuite serve`` in a child process on a free loopback port."""

    def __init__(self, model_root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dlsuite.cli", "serve", "--model-root", str(model_root), "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        for line in self.proc.stdout:
            log.info("server: %s", line.strip())
            if line.startswith("listening on http://"):
                self.host, port = line.split("http://")[1].split()[0].rsplit(":", 1)
                self.port = int(port)
                return
        raise SystemExit(f"dlsuite serve ended with status {self.proc.wait()} before it listened")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def load_test(server: Server, task: str, body: dict[str, Any], requests: int, clients: int,
              max_seconds: float) -> dict[str, Any]:
    """``requests`` predictions from ``clients`` threads; latencies, errors and throughput."""
    data = json.dumps(body).encode()
    path = f"/v1/models/{task}:predict"
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [WARMUP_REQUESTS]

    def take() -> bool:
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def client(record: bool, deadline: float) -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        try:
            while time.perf_counter() < deadline and take():
                started = time.perf_counter()
                try:
                    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
                    response = conn.getresponse()
                    answer = response.read()
                    ok = response.status == 200 and len(json.loads(answer)["predictions"]) == 1
                    problem = None if ok else f"{response.status}: {answer[:200]!r}"
                except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                    problem = f"{type(e).__name__}: {e}"
                    conn.close()
                    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
                elapsed = time.perf_counter() - started
                if record:
                    with lock:
                        latencies.append(elapsed)
                        if problem:
                            errors.append(problem)
        finally:
            conn.close()

    def run(count: int, record: bool) -> float:
        remaining[0] = count
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(record, started + max_seconds)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started

    run(WARMUP_REQUESTS, record=False)
    wall = run(requests, record=True)
    ms = sorted(1000.0 * t for t in latencies)
    if errors:
        log.warning("%s %s: %d errors, first: %s", task, body["signature_name"], len(errors), errors[0])
    return {
        "requests": len(ms),
        "errors": len(errors),
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))],
        "throughput": len(ms) / wall,
        "request_bytes": len(data),
    }


def benchmark(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    root = args.model_root or train_exports(args.tasks, work)
    exports = {task: newest_export(root, task) for task in args.tasks}
    bodies = {task: example_requests(exports[task]) for task in args.tasks}
    rows = []
    server = Server(root)
    try:
        for task in args.tasks:
            for signature, body in bodies[task].items():
                log.info("%s %s: %d requests from %d clients", task, signature, args.requests, args.clients)
                rows.append({"task": task, "version": exports[task].name, "signature": signature,
                             **load_test(server, task, body, args.requests, args.clients, args.max_seconds)})
    finally:
        server.stop()
    for row in rows:  # after the server stopped: the direct calls do not compete with it for the cores
        row["direct_ms"] = direct_latency_ms(exports[row["task"]], bodies[row["task"]][row["signature"]])
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    header = ["task", "signature", "request bytes", "requests", "errors", "p50 ms", "p99 ms", "req/s",
              "direct p50 ms"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append(
            f"| {r['task']} | `{r['signature']}` | {r['request_bytes']:,} | {r['requests']:,} | {r['errors']} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['throughput']:.0f} | {r['direct_ms']:.2f} |"
        )
    return "\n".join(lines)


def results_section(command: str, body: str, args: argparse.Namespace, total: float, loads: tuple[str, str]) -> str:
    notes = [
        f"`dlsuite serve` (the standard library's `ThreadingHTTPServer`, a thread per connection) in its own "
        f"process on 127.0.0.1; {args.clients} client threads with a keep-alive connection each send "
        f"{args.requests:,} `:predict` requests per signature in all, batch 1, row form, after "
        f"{WARMUP_REQUESTS} warm-up requests. Each task's default network trained for 3 epochs on its embedded "
        "data (the model's size, not its accuracy, sets the time); the example is the first test example. "
        "Latency: request sent to answer read, at the client. `direct p50 ms`: the same signature called in "
        f"process on the same example (median of {DIRECT_CALLS}), so p50 minus it is the cost of HTTP, JSON and "
        "the server's threads. Both processes share the machine's 2 cores with each other (and with whatever "
        "else runs: see the load average).",
    ]
    return common.section(NAME, "Serving over HTTP", command, total, loads, [*notes, "", body, ""])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-root", type=Path, help="serve these exports instead of training fresh ones")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per signature")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time limit of one signature's load")
    parser.add_argument("--write-results", action="store_true", help=f"rewrite this section of {common.RESULTS_FILE.name}")
    args = parser.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown or not args.tasks:
        parser.error(f"--tasks takes names from {','.join(TASKS)}; got {unknown or 'none'}")
    if args.requests < 1 or args.clients < 1:
        parser.error("--requests and --clients need at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    started, load_at_start = time.perf_counter(), common.load_average()
    command = shlex.join(["python", "benchmarks/serving.py", *(sys.argv[1:] if argv is None else argv)])
    with tempfile.TemporaryDirectory(prefix="dlsuite-serving-") as tmp:
        rows = benchmark(args, Path(tmp))
    body = table(rows)
    total = time.perf_counter() - started
    print(body)
    if args.write_results:
        section = results_section(command, body, args, total, (load_at_start, common.load_average()))
        common.write_results(NAME, section)
        log.info("wrote %s", common.RESULTS_FILE)
    return 1 if any(r["errors"] or r["requests"] < args.requests for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
