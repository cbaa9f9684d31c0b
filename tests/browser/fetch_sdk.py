#!/usr/bin/env python3
"""Build the pinned ``@sentry/browser`` (with Replay) into one script for the browser tests.

The npm package no longer ships Sentry's CDN bundles (``bundle.tracing.replay.min.js``), so
this script makes the equivalent: ``npm ci`` of ``package.json`` + ``package-lock.json`` in a
temporary directory, then esbuild bundles ``sdk-entry.js`` into an IIFE that defines the
global ``Sentry``. The result and the licences are committed in ``static/``, so the tests
need no Node.js; only whoever changes the pinned version runs this (it needs ``npm``):

    python tests/browser/fetch_sdk.py

Like ``scripts/vendor_assets.py``, it prints what it writes and records the versions in
``static/manifest.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
BUNDLE = "sentry-browser.min.js"


def install(workdir: Path) -> Path:
    for name in ("package.json", "package-lock.json", "sdk-entry.js"):
        shutil.copy2(HERE / name, workdir / name)
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=workdir,
                   check=True)
    return workdir / "node_modules"


def build(workdir: Path, out: Path) -> None:
    esbuild = workdir / "node_modules" / ".bin" / "esbuild"
    subprocess.run([str(esbuild), "sdk-entry.js", "--bundle", "--format=iife",
                    "--global-name=Sentry", "--minify", "--target=es2020",
                    "--legal-comments=eof", f"--outfile={out}"], cwd=workdir, check=True)


def licences(node_modules: Path) -> tuple[str, dict[str, str]]:
    """Every bundled @sentry package's licence, one after another, and their versions."""
    parts, versions = [], {}
    for pkg in sorted((node_modules / "@sentry").iterdir()):
        meta = json.loads((pkg / "package.json").read_text())
        versions[meta["name"]] = meta["version"]
        licence = pkg / "LICENSE"
        if licence.exists():
            parts.append(f"== {meta['name']}@{meta['version']} ==\n\n{licence.read_text()}")
    return "\n".join(parts), versions


def main() -> int:
    STATIC.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spyglass-sentry-browser-") as tmp:
        work = Path(tmp)
        node_modules = install(work)
        build(work, STATIC / BUNDLE)
        text, versions = licences(node_modules)
    (STATIC / "LICENSE.txt").write_text(text)
    (STATIC / "manifest.json").write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n")
    for name in (BUNDLE, "LICENSE.txt", "manifest.json"):
        print(f"wrote {(STATIC / name).relative_to(HERE.parents[1])} "
              f"({(STATIC / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
