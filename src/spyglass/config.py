"""Settings: defaults, then an optional TOML file, then ``SPYGLASS_*`` environment variables.

The TOML file is ``$SPYGLASS_CONFIG`` if set, else ``<data-dir>/spyglass.toml`` if it exists.
Keys in the file are the field names below (``port = 9000``); environment variables are the
same names upper-cased with the ``SPYGLASS_`` prefix (``SPYGLASS_PORT=9000``).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

DEFAULT_DATA_DIR = "./spyglass-data"


@dataclass
class Settings:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    host: str = "127.0.0.1"
    port: int = 8000
    #: Public URL of this server, used in DSNs and links. Derived from host/port when empty.
    base_url: str = ""
    #: Metadata database. Empty means SQLite in the data directory.
    database_url: str = ""
    #: Telemetry store. Empty means DuckDB in the data directory; ``clickhouse://`` or
    #: ``http(s)://`` for a ClickHouse server, ``chdb:///path`` for the embedded ClickHouse engine.
    clickhouse_url: str = ""
    #: Embedded DuckDB's buffer pool limit ("512MB", "2GB" ...; empty: DuckDB's default of
    #: 80% of the machine's memory). Pages beyond it are evicted or spilled to disk.
    duckdb_memory_limit: str = "256MB"
    #: Embedded DuckDB: ingest appends to a journal (fsync'd, then acknowledged) that is
    #: loaded into DuckDB in bulk every ``journal_load_ms`` (reads load it first, so they see
    #: every acknowledged row). Off: each batch is inserted into DuckDB before the reply.
    ingest_journal: bool = True
    journal_load_ms: int = 200
    #: Blob store. Empty means a directory in the data directory; ``s3://bucket/prefix`` for S3.
    blob_url: str = ""
    s3_endpoint_url: str = ""
    secret_key: str = ""
    log_level: str = "info"
    log_format: str = "json"
    #: Send cookies only over HTTPS. "auto" follows the request scheme.
    secure_cookies: str = "auto"
    session_days: int = 14
    default_retention_days: int = 90
    #: Batching writer: flush when this many rows wait, or after this many milliseconds.
    writer_batch_rows: int = 10_000
    writer_interval_ms: int = 10
    #: Batching writer: refuse new rows (429/503) once this many are waiting.
    writer_max_pending_rows: int = 200_000
    #: Periodic jobs (retention ...) run on one leader process; disable to run none here.
    jobs_enabled: bool = True
    retention_interval_s: int = 3600
    login_max_failures: int = 10
    login_window_s: int = 900
    #: OTLP/gRPC receiver port (OpenTelemetry's default 4317), on ``host``; 0 disables it.
    otlp_grpc_port: int = 4317
    #: Processes that decode, normalize, scrub and group Sentry events beside the server
    #: process: -1 one per core but one (at least one), 0 none (all in the server process).
    ingest_workers: int = -1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def public_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "127.0.0.1", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def metadata_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'spyglass.sqlite3'}"

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.secret_key:
            self.secret_key = _load_or_create_secret(self.data_dir / "secret.key")


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def _coerce(kind: Any, raw: Any) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        return str(raw).strip().lower() in ("1", "true", "yes", "on")
    if kind is int:
        return int(raw)
    if kind is Path:
        return Path(raw)
    return str(raw)


def load_settings(data_dir: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings; explicit arguments (the command line) win over env and file."""
    env = os.environ
    chosen_dir = Path(data_dir or env.get("SPYGLASS_DATA_DIR") or DEFAULT_DATA_DIR)
    values: dict[str, Any] = {}
    config_file = env.get("SPYGLASS_CONFIG") or str(chosen_dir / "spyglass.toml")
    if Path(config_file).is_file():
        values.update(tomllib.loads(Path(config_file).read_text()))
    hints = get_type_hints(Settings)
    for f in dataclasses.fields(Settings):
        key = f"SPYGLASS_{f.name.upper()}"
        if key in env and f.name != "extra":
            values[f.name] = env[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["data_dir"] = chosen_dir
    known = {f.name for f in dataclasses.fields(Settings)}
    extra = {k: v for k, v in values.items() if k not in known}
    kwargs = {k: _coerce(hints[k], v) for k, v in values.items() if k in known and k != "extra"}
    return Settings(**kwargs, extra=extra)
