#!/usr/bin/env python3
"""Run the package's suite against real torch releases, patch off and on.

For each version a virtual environment is built once under
${TORCH_MATRIX_CACHE:-~/.cache/torch-dtensor-patch/matrix}/torch-<ver> and
marked complete with a stamp file; a venv without the stamp (an interrupted
build) is rebuilt. The package itself is reinstalled (non-editable, so the
.pth start-up hook is what gets tested) on every run.

Mode "off" sets TORCH_DTENSOR_PATCH=0: tests then assert the documented
failure wherever the installed torch lacks a component, so on a pre-fix torch
they must still pass. Mode "hook" relies on the installed .pth to patch every
rank. Exit status is non-zero if any expectation fails. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
VERSIONS = ("2.10.0", "2.11.0", "2.13.0")
STAMP = ".torch-matrix-complete"

# What status() must report on stock torch (patch off); checked here rather
# than in the package because only a test harness may know version numbers.
EXPECTED_STOCK = {
    "2.10.0": {"redistribute": "missing", "to_local": "missing", "from_local": "missing"},
    "2.11.0": {"redistribute": "missing", "to_local": "missing", "from_local": "missing"},
    "2.13.0": {"redistribute": "upstream", "to_local": "upstream", "from_local": "missing"},
}


def cache_root() -> Path:
    default = Path.home() / ".cache" / "torch-dtensor-patch" / "matrix"
    return Path(os.environ.get("TORCH_MATRIX_CACHE", default))


def sh(cmd, log, env=None, check=True):
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}), see {log}: {' '.join(map(str, cmd))}"
        )
    return proc.returncode


def ensure_venv(version: str, log: Path) -> Path:
    venv = cache_root() / f"torch-{version}"
    py = venv / "bin" / "python"
    stamp = venv / STAMP
    if stamp.exists() and stamp.read_text().strip() == version:
        return py
    if venv.exists():
        shutil.rmtree(venv)  # half-built: start over
    venv.parent.mkdir(parents=True, exist_ok=True)
    sh([sys.executable, "-m", "venv", str(venv)], log)
    pip = [str(py), "-m", "pip", "install", "--quiet"]
    sh(pip + [f"torch=={version}", "pytest", "pytest-xdist", "numpy", "filelock"], log)
    (venv / STAMP).write_text(version + "\n")
    return py


def install_package(py: Path, log: Path):
    sh(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--force-reinstall",
            str(PACKAGE),
        ],
        log,
    )


def stock_status(py: Path, log: Path) -> dict:
    env = dict(os.environ, TORCH_DTENSOR_PATCH="0")
    out = subprocess.run(
        [str(py), "-m", "torch_dtensor_patch", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    with open(log, "a") as f:
        f.write(out.stdout + out.stderr)
    return {k: v["state"] for k, v in json.loads(out.stdout).items()}


def run_suite(py: Path, mode: str, log: Path, workers: str) -> tuple[int, str, float]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["TORCH_DTENSOR_PATCH"] = "0" if mode == "off" else "1"
    env["TORCH_DTENSOR_PATCH_TEST_VIA_HOOK"] = "1" if mode == "hook" else "0"
    report = log.with_suffix(f".{mode}.txt")
    started = time.monotonic()
    # Run from outside the source tree so the tests import the installed
    # wheel, not src/.
    cmd = [
        str(py),
        "-m",
        "pytest",
        str(PACKAGE / "tests"),
        "-p",
        "no:cacheprovider",
        "-q",
        "-n",
        workers,
    ]
    with open(report, "w") as out:
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cache_root(), check=False
        )
    lines = [ln for ln in report.read_text().splitlines() if ln.strip()]
    return proc.returncode, (lines[-1] if lines else "no output"), time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="*", default=list(VERSIONS))
    parser.add_argument("-n", "--workers", default="2")
    args = parser.parse_args()

    logs = cache_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows, failed = [], False
    for version in args.versions:
        log = logs / f"torch-{version}.log"
        log.write_text("")
        t0 = time.monotonic()
        py = ensure_venv(version, log)
        install_package(py, log)
        setup_s = time.monotonic() - t0
        states = stock_status(py, log)
        expected = EXPECTED_STOCK.get(version)
        status_ok = expected is None or states == expected
        failed |= not status_ok
        rows.append((version, "status", "ok" if status_ok else f"UNEXPECTED {states}", setup_s))
        for mode in ("off", "hook"):
            rc, summary, wall = run_suite(py, mode, log, args.workers)
            failed |= rc != 0
            rows.append((version, mode, ("PASS " if rc == 0 else "FAIL ") + summary, wall))
            print(f"torch {version} {mode}: {summary} ({wall:.0f} s)", flush=True)

    print("\nmode off: TORCH_DTENSOR_PATCH=0, tests assert the documented failures where")
    print("torch lacks a component; mode hook: the installed .pth patches every process.")
    print(f"{'torch':<8} {'mode':<7} {'wall s':>7}  result")
    for version, mode, result, wall in rows:
        print(f"{version:<8} {mode:<7} {wall:7.0f}  {result}")
    print(f"logs: {logs}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
