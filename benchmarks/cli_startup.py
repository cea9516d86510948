"""Start-up time of `magic` commands that run no job, against `python -c pass`.

Every command runs as a user types it (the console script of this
environment, a fresh process each time). Rounds interleave the commands, so
that a machine slowing down for a while costs every command alike; each
command's figure is its median over the rounds. One unmeasured round first
warms the file cache.

    python benchmarks/cli_startup.py                 # 5 rounds
    python benchmarks/cli_startup.py --rounds 9 --json /tmp/cli.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BASELINE = "python -c pass"


def commands() -> dict[str, list[str]]:
    magic = str(Path(sys.executable).parent / "magic")
    return {
        BASELINE: [sys.executable, "-c", "pass"],
        "magic --help": [magic, "--help"],
        "magic --version": [magic, "--version"],
        "magic datasets list": [magic, "datasets", "list"],
        "magic presets list": [magic, "presets", "list"],
        "magic submit preset:attr-wikitext --dry-run":
            [magic, "submit", "preset:attr-wikitext", "--dry-run"],
    }


def run_once(argv: list[str], env: dict, cwd: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: `{' '.join(argv)}` exited {proc.returncode}: {proc.stderr.strip()}")
    return elapsed


def measure(rounds: int) -> dict[str, list[float]]:
    cmds = commands()
    with tempfile.TemporaryDirectory() as cwd:
        # No user profiles or hub access: the same work on any machine.
        env = {**os.environ, "MAGIC_CLUSTER_CONFIG": str(Path(cwd) / "profiles"),
               "HF_HUB_OFFLINE": "1"}
        for argv in cmds.values():
            run_once(argv, env, cwd)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(rounds):
            for name, argv in cmds.items():
                times[name].append(run_once(argv, env, cwd))
    return times


def summarize(times: dict[str, list[float]]) -> list[dict]:
    base = statistics.median(times[BASELINE])
    return [{"command": name, "median_s": statistics.median(t), "min_s": min(t),
             "max_s": max(t), "ratio_to_baseline": statistics.median(t) / base,
             "above_baseline_s": statistics.median(t) - base, "runs_s": t}
            for name, t in times.items()]


def markdown(rows: list[dict], rounds: int) -> str:
    lines = [f"# `magic` start-up ({rounds} rounds, medians)", "",
             "| command | median s | min s | max s | above `python -c pass` s | ratio |",
             "|---|---|---|---|---|---|"]
    lines += [f"| `{r['command']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} "
              f"| {r['above_baseline_s']:.3f} | {r['ratio_to_baseline']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=RESULTS / "cli-startup.json",
                        help="Where the results go (and the table, as the same name .md).")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    rows = summarize(measure(args.rounds))
    table = markdown(rows, args.rounds)
    print(table, end="")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "rounds": args.rounds, "baseline": BASELINE, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "results": rows,
    }, indent=2) + "\n")
    args.json.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
