"""Startup benchmark: how long ``spyglass serve`` takes until ``/readyz`` says pass.

Each run starts ``python -m spyglass serve`` on a free port as a fresh process and polls
``GET /readyz`` every 10 ms; the time is from process start until the first 200 reply whose
status is "pass". The first start is on an empty data directory (migrations, table creation
and the first admin are part of it); the second start reuses that directory, as a restart
does. For scale, the import of the app and its features alone is timed too. SPYGLASS_*
variables are removed from the environment, so the default embedded stack (SQLite + DuckDB)
is measured. The requirement is a ready server within 3 seconds.

Run: ``.venv/bin/python benchmarks/startup_benchmark.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REQUIREMENT_S = 3.0
IMPORT_ONLY = "import spyglass.cli, spyglass.app; spyglass.app.load_features()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SPYGLASS_")}


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
            return reply.status == 200 and json.loads(reply.read()).get("status") == "pass"
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def time_to_ready(python: str, data_dir: Path, log: Path, timeout: float = 30.0) -> float:
    """Seconds from spawning the server until ``/readyz`` passes; the server is stopped after."""
    port = free_port()
    cmd = [python, "-m", "spyglass", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir)]
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
        try:
            while not ready(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}; see its log:\n"
                                       + log.read_text()[-2000:])
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"not ready after {timeout} s; see its log:\n"
                                       + log.read_text()[-2000:])
                time.sleep(0.01)
            return time.perf_counter() - started
        finally:
            stop(proc)


def time_import(python: str) -> float:
    started = time.perf_counter()
    subprocess.run([python, "-c", IMPORT_ONLY], check=True, env=clean_env())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="interpreter of the install")
    args = parser.parse_args()

    first, second, imports = [], [], []
    for i in range(args.runs):
        tmp = Path(tempfile.mkdtemp(prefix="spyglass-startup-"))
        try:
            data_dir, log = tmp / "data", tmp / "server.log"
            first.append(time_to_ready(args.python, data_dir, log))
            second.append(time_to_ready(args.python, data_dir, log))
            imports.append(time_import(args.python))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"run {i + 1}: empty data dir {first[-1]:.2f} s, existing {second[-1]:.2f} s, "
              f"import only {imports[-1]:.2f} s", file=sys.stderr)

    print(f"\n`spyglass serve` until `/readyz` passes, {args.runs} runs:\n")
    print("| start | median | max | within 3 s |")
    print("|---|---:|---:|---|")
    for name, times in (("empty data dir", first), ("existing data dir", second),
                        ("import app + features only", imports)):
        ok = "yes" if max(times) < REQUIREMENT_S else "no"
        print(f"| {name} | {statistics.median(times):.2f} s | {max(times):.2f} s | {ok} |")


if __name__ == "__main__":
    main()
