"""The two servers under test, each started as subprocesses on a fresh data directory.

Spyglass: ``spyglass serve`` (the server process and its ingest workers, SQLite + DuckDB;
CPU and memory are summed over all of them). Its reply to an ingest request comes after the
event is normalized, grouped, assigned to an issue and committed, so an acknowledged event is
processed; the harness checks the stored counts after the run.

Bugsink: its documented single-server setup (``bugsink-create-conf --template=singleserver``,
``bugsink-manage migrate`` for both databases, gunicorn serving ``bugsink.wsgi`` with
2 x cores + 1 sync workers, and the Snappea background worker ``bugsink-runsnappea``), on
SQLite. Ingest stores the event to a file and queues a digest task; Snappea digests it
(grouping, issue, counts) later. An event counts as processed once it is a row of
``events_event``, and the run ends when all acknowledged events are there and the task queue
is empty. No nginx: the load generator talks to gunicorn over loopback TCP, which only saves
Bugsink work.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
SPYGLASS_PY = str(ROOT / ".venv" / "bin" / "python")
BUGSINK_VENV = Path(os.environ.get("BUGSINK_VENV", "/tmp/bugsink-venv"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not up after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Meter:
    """CPU time (user + sys) and RSS of some processes and all their descendants.

    The process tree is listed again only every ``rescan`` seconds (psutil walks all of
    /proc to find children, which costs more than the samples themselves).
    """

    def __init__(self, pids: list[int], interval: float = 0.1, rescan: float = 2.0) -> None:
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.rescan = rescan
        self.rss_max = 0
        self._procs: list[psutil.Process] = []
        self._scanned = 0.0
        self._last_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def processes(self, fresh: bool = False) -> list[psutil.Process]:
        if fresh or time.monotonic() - self._scanned > self.rescan:
            procs = []
            for root in self.roots:
                try:
                    procs.append(root)
                    procs.extend(root.children(recursive=True))
                except psutil.NoSuchProcess:
                    pass
            self._procs, self._scanned = procs, time.monotonic()
        return self._procs

    def cpu_seconds(self) -> float:
        """Summed CPU of every process seen so far (an exited one keeps its last reading)."""
        for p in self.processes(fresh=True):
            try:
                t = p.cpu_times()
                self._last_cpu[p.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return sum(self._last_cpu.values())

    def rss(self) -> int:
        total = 0
        for p in self.processes():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.rss_max = max(self.rss_max, self.rss())
            if time.monotonic() - self._scanned > self.rescan:
                self.cpu_seconds()

    def start(self) -> None:
        self.rss_max = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.rss_max = max(self.rss_max, self.rss())


@dataclass
class Server:
    name: str
    data_dir: Path
    port: int
    project_id: int = 0
    public_key: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log: Path | None = None
    #: Spyglass: (organization slug, project slug, API token) for the Sentry web API.
    api: tuple[str, str, str] = ("", "", "")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


# ------------------------------------------------------------------------------ Spyglass


def spyglass_env(data_dir: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPYGLASS_")}
    env.update({
        "SPYGLASS_DATA_DIR": str(data_dir),
        "SPYGLASS_PORT": str(port),
        "SPYGLASS_LOG_LEVEL": "warning",
    })
    env.update(extra)
    return env


def start_spyglass(work: Path, extra_env: dict[str, str] | None = None,
                   wrap: list[str] | None = None) -> Server:
    data = work / "spyglass-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    port = free_port()
    env = spyglass_env(data, port, extra_env or {})
    subprocess.run([SPYGLASS_PY, "-m", "spyglass", "migrate"], env=env, check=True,
                   capture_output=True)
    made = subprocess.run([SPYGLASS_PY, "-m", "spyglass", "project", "create", "--org", "bench",
                           "--name", "shop", "--json"], env=env, check=True,
                          capture_output=True, text=True)
    info = json.loads(made.stdout.strip().splitlines()[-1])
    # An API token, to see the events through the Sentry web API as a user would.
    subprocess.run([SPYGLASS_PY, "-m", "spyglass", "user", "create", "--email", "bench@localhost",
                    "--password", "bench-password-1", "--admin"], env=env, check=True,
                   capture_output=True)
    issued = subprocess.run([SPYGLASS_PY, "-m", "spyglass", "token", "create", "--email",
                             "bench@localhost", "--json"], env=env, check=True,
                            capture_output=True, text=True)
    log = work / "spyglass.log"
    cmd = (wrap or []) + [SPYGLASS_PY, "-m", "spyglass", "serve", "--host", "127.0.0.1",
                          "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server("spyglass", data, port, info["id"], info["public_key"], [proc], log,
                    api=(info["org"], info["slug"],
                         json.loads(issued.stdout.strip().splitlines()[-1])["token"]))
    wait_http(f"http://127.0.0.1:{port}/readyz", proc, log)
    return server


def spyglass_api_events(server: Server) -> int:
    """Events the Sentry web API shows: the sum of every issue's count, over all pages."""
    org, project, token = server.api
    url = (f"http://127.0.0.1:{server.port}/api/0/projects/{org}/{project}/issues/"
           "?query=&statsPeriod=&limit=100")
    total = 0
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        while url:
            r = client.get(url)
            r.raise_for_status()
            total += sum(int(issue["count"]) for issue in r.json())
            nxt = r.links.get("next", {})
            url = nxt.get("url") if nxt.get("results") == "true" else None
    return total


def spyglass_counts(data_dir: Path) -> dict[str, int]:
    """Events stored, events with an issue, distinct issues (read after the server stopped)."""
    import duckdb

    con = duckdb.connect(str(data_dir / "telemetry.duckdb"), read_only=True)
    try:
        events, grouped, issues = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE issue_id > 0), count(DISTINCT issue_id) "
            "FROM events").fetchone()
    finally:
        con.close()
    meta = sqlite3.connect(f"file:{data_dir / 'spyglass.sqlite3'}?mode=ro", uri=True)
    try:
        (issue_rows,) = meta.execute("SELECT count(*) FROM issues").fetchone()
    finally:
        meta.close()
    return {"events": events, "grouped": grouped, "issues": issues, "issue_rows": issue_rows}


# ------------------------------------------------------------------------------- Bugsink

BUGSINK_CONF_EXTRA = """

# --- benchmark overrides (see benchmarks/errors_ingest/servers.py) ---
# No reverse proxy in front: plain HTTP on loopback.
SECURE_PROXY_SSL_HEADER = None
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
USE_X_REAL_IP = False
# The default quotas (1,000 events per 5 minutes, 5,000 per hour) would drop most of the
# benchmark's events unseen; lift them so every event is digested.
BUGSINK.update({
    "MAX_EVENTS_PER_PROJECT_PER_5_MINUTES": 100_000_000,
    "MAX_EVENTS_PER_PROJECT_PER_HOUR": 100_000_000,
    "MAX_EVENTS_PER_PROJECT_PER_MONTH": 1_000_000_000,
    "MAX_EVENTS_PER_5_MINUTES": 100_000_000,
    "MAX_EVENTS_PER_HOUR": 100_000_000,
    "MAX_EVENTS_PER_MONTH": 1_000_000_000,
})
"""

BUGSINK_PROJECT = """
from teams.models import Team
from projects.models import Project
team = Team.objects.create(name="bench")
project = Project.objects.create(name="shop", team=team)
print("PROJECT", project.id, project.sentry_key.hex)
"""


def bugsink_bin(name: str) -> str:
    return str(BUGSINK_VENV / "bin" / name)


def start_bugsink(work: Path, workers: int | None = None) -> Server:
    base = work / "bugsink"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPYGLASS_", "VIRTUAL_ENV"))}
    env.update({"PYTHONUNBUFFERED": "1", "PATH": f"{BUGSINK_VENV / 'bin'}:{env['PATH']}",
                "PYTHONPATH": str(base), "DJANGO_SETTINGS_MODULE": "bugsink_conf"})
    subprocess.run([bugsink_bin("bugsink-create-conf"), "--template=singleserver",
                    f"--host=127.0.0.1:{port}", f"--base-dir={base}"], cwd=base, env=env,
                   check=True, capture_output=True)
    conf = base / "bugsink_conf.py"
    text = conf.read_text().replace(f'"https://127.0.0.1:{port}"', f'"http://127.0.0.1:{port}"')
    conf.write_text(text + BUGSINK_CONF_EXTRA)
    manage = bugsink_bin("bugsink-manage")
    subprocess.run([manage, "migrate"], cwd=base, env=env, check=True, capture_output=True)
    subprocess.run([manage, "migrate", "snappea", "--database=snappea"], cwd=base, env=env,
                   check=True, capture_output=True)
    made = subprocess.run([bugsink_bin("bugsink-manage"), "shell", "-c", BUGSINK_PROJECT],
                          cwd=base, env=env, check=True, capture_output=True, text=True)
    line = next(x for x in made.stdout.splitlines() if x.startswith("PROJECT "))
    _, project_id, key = line.split()
    log = work / "bugsink.log"
    workers = workers or 2 * (os.cpu_count() or 1) + 1
    with log.open("wb") as out:
        gunicorn = subprocess.Popen(
            [bugsink_bin("gunicorn"), f"--bind=127.0.0.1:{port}", f"--workers={workers}",
             "--error-logfile", "-", "bugsink.wsgi"],
            cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT)
        snappea = subprocess.Popen([bugsink_bin("bugsink-runsnappea")], cwd=base, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    server = Server("bugsink", base, port, int(project_id), key, [gunicorn, snappea], log)
    wait_http(f"http://127.0.0.1:{port}/", gunicorn, log)
    return server


def bugsink_counts(base: Path) -> dict[str, int]:
    """Digested events, issues, and tasks still queued (read live: SQLite in WAL mode)."""
    out = {}
    db = sqlite3.connect(f"file:{base / 'db.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        out["events"] = db.execute("SELECT count(*) FROM events_event").fetchone()[0]
        out["issues"] = db.execute("SELECT count(*) FROM issues_issue").fetchone()[0]
    finally:
        db.close()
    q = sqlite3.connect(f"file:{base / 'snappea.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        out["queued"] = q.execute("SELECT count(*) FROM snappea_task").fetchone()[0]
    finally:
        q.close()
    return out


def wait_bugsink(base: Path, expected: int, timeout: float = 1800,
                 poll: float = 0.25) -> tuple[float, dict[str, int]]:
    """Block until ``expected`` events are digested and the queue is empty; return when."""
    deadline = time.perf_counter() + timeout
    last = -1
    stalled_since = time.perf_counter()
    while True:
        counts = bugsink_counts(base)
        now = time.perf_counter()
        if counts["events"] >= expected and counts["queued"] == 0:
            return now, counts
        if counts["events"] != last:
            last, stalled_since = counts["events"], now
        elif now - stalled_since > 60 and counts["queued"] == 0:
            print(f"    bugsink stalled at {counts}", file=sys.stderr)
            return now, counts
        if now > deadline:
            return now, counts
        time.sleep(poll)
