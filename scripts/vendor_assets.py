#!/usr/bin/env python3
"""Copy the built front-end libraries from npm into the Python package.

Spyglass serves HTMX, Pico CSS and uPlot from ``src/spyglass/kernel/web/static/vendor/``.
Those files are committed, so running Spyglass needs no Node.js; only maintainers who change
a version in ``package.json`` run this script (it needs ``npm``):

    python scripts/vendor_assets.py            # npm ci into a temporary directory, then copy
    python scripts/vendor_assets.py --use-node-modules   # copy from ./node_modules as it is

It prints every file it copies and writes ``vendor/manifest.json`` with the versions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src" / "spyglass" / "kernel" / "web" / "static" / "vendor"

#: npm package -> (directory under vendor/, files to copy relative to the package root)
ASSETS: dict[str, tuple[str, list[str]]] = {
    "htmx.org": ("htmx", ["dist/htmx.min.js", "LICENSE"]),
    "@picocss/pico": ("pico", ["css/pico.indigo.min.css", "LICENSE.md"]),
    "uplot": ("uplot", ["dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE"]),
}


def install(workdir: Path) -> Path:
    """Run ``npm ci`` on a copy of package.json + package-lock.json; return its node_modules."""
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(ROOT / name, workdir / name)
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=workdir, check=True
    )
    return workdir / "node_modules"


def _target_name(rel: str) -> str:
    # Licence files become LICENSE.txt so the package-data globs ship them in the wheel.
    name = Path(rel).name
    return "LICENSE.txt" if name.upper().startswith("LICENSE") else name


def copy_assets(node_modules: Path, dest: Path) -> dict[str, str]:
    """Copy each package's built files; return {package: version}."""
    versions: dict[str, str] = {}
    for package, (subdir, files) in ASSETS.items():
        source = node_modules / package
        meta = json.loads((source / "package.json").read_text())
        versions[package] = meta["version"]
        target = dest / subdir
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for rel in files:
            out = target / _target_name(rel)
            shutil.copy2(source / rel, out)
            size = out.stat().st_size
            print(f"{package}@{meta['version']}: {rel} -> {out.relative_to(ROOT)} ({size} bytes)")
    manifest = dest / "manifest.json"
    manifest.write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n")
    print(f"wrote {manifest.relative_to(ROOT)}")
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--use-node-modules",
        action="store_true",
        help="copy from ./node_modules instead of running npm ci in a temporary directory",
    )
    args = parser.parse_args(argv)
    VENDOR.mkdir(parents=True, exist_ok=True)
    if args.use_node_modules:
        copy_assets(ROOT / "node_modules", VENDOR)
        return 0
    with tempfile.TemporaryDirectory(prefix="spyglass-vendor-") as tmp:
        copy_assets(install(Path(tmp)), VENDOR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
