"""`magic plan`'s predictions against measured runs: time and peak memory of each phase.

For each configuration, a job file with the benchmark's model shape, rows
and settings is planned by the real command (`magic plan JOB.yaml`), then
the same work is measured the way `attribution.py` measures its
``magic_core`` workload (what `magic attribute` runs: ``kept_states: auto``,
the default memory budgets, a fresh process). ``cpu`` and ``cpu-small`` are
the presets `magic_driver.plan_time.CPU` was fitted to (on earlier runs:
this checks that the fit holds on new ones, not that it generalises);
``cpu-wide`` is a shape it was not fitted to.

    python benchmarks/plan_accuracy.py               # ~4 min on 2 cores (3 runs each)
    python benchmarks/plan_accuracy.py --calibrate   # new calibration runs of cpu and cpu-small
    python benchmarks/plan_accuracy.py --fit         # the CPU rate fitted to the calibration runs

Calibration and check read runs alike: each phase's seconds are the median
over fresh runs of the same `measure` (an earlier calibration took the
seconds of the run whose total over its bracketing plain runs was the
median: on a drifting machine that was the slowest of its three cpu-small
runs, and the fit predicted 1.27x the check's training time).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from attribution import PRESETS, RESULTS, _model, measure

CONFIGS = {
    "cpu-small": PRESETS["cpu-small"],
    "cpu": PRESETS["cpu"],
    "cpu-wide": dict(layers=3, hidden=384, heads=6, seq=96, steps=32, batch=4, vocab=512),
}
TARGET = 0.25  # |predicted / measured - 1|


def job_file(cfg: dict, folder: Path) -> Path:
    """A job of `magic_core_run`'s shape and settings (its rows are random tokens; a world
    corpus of as many documents stands in for them: the plan reads only their count)."""
    _model(cfg).config.save_pretrained(folder / "model")
    rows = cfg["steps"] * cfg["batch"]
    job = {
        "kind": "attribute", "device": "cpu",
        "model": {"path": str(folder / "model")},
        "data": {"dataset": "world-attribution", "options": {"n_docs": rows}, "n_docs": rows},
        "train": {"optimizer": "adam", "lr": 1e-4, "batch_size": cfg["batch"], "shuffle": False,
                  "precision": "fp32", "max_seq_len": cfg["seq"]},
        "attribution": {"kept_states": "auto", "granularity": "per-token",
                        "spill_dir": str(folder / "spill")},
        "output": {"dir": str(folder / "run")},
    }
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def predicted(cfg: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        job, out = job_file(cfg, Path(tmp)), Path(tmp) / "plan.json"
        subprocess.run([sys.executable, "-m", "magic_driver.cli", "plan", str(job), "--json",
                        str(out)], check=True, capture_output=True, text=True)
        return json.loads(out.read_text())


PHASES = ("train", "query", "backward", "total")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def median_run(cfg: dict, repeat: int) -> dict:
    """``repeat`` fresh runs: each phase's median seconds and peak (this machine drifts),
    the schedule and counts of the first, and every run's seconds."""
    runs = [measure("magic_core", cfg, "cpu") for _ in range(repeat)]
    run = dict(runs[0])
    for phase in PHASES:
        run[phase] = _median([r[phase] for r in runs])
    run["peak_gib"] = {p: _median([r["peak_gib"][p] for r in runs]) for p in runs[0]["peak_gib"]}
    run["totals"] = sorted(r["total"] for r in runs)
    run["runs"] = [{p: r[p] for p in PHASES} for r in runs]
    return run


def calibrate(names: list[str], repeat: int) -> None:
    """Measure the presets `plan_time.CPU` is fitted to; writes results/plan-calibration-*.json."""
    for name in names:
        run = median_run(CONFIGS[name], repeat)
        data = {"preset": name, "config": CONFIGS[name], "device": "cpu", "repeat": repeat,
                "statistic": "median of each phase over fresh runs", "magic_core": run}
        (RESULTS / f"plan-calibration-{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        print(f"{name}: train {run['train']:.2f} s, backward {run['backward']:.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in run['totals'])})", flush=True)


def compare(names: list[str], repeat: int) -> dict:
    rows = {}
    for name in names:
        cfg = CONFIGS[name]
        plan = predicted(cfg)
        run = median_run(cfg, repeat)
        rows[name] = {
            "config": cfg, "schedule": {"predicted": plan["schedule"]["resolved"],
                                        "measured": run["schedule"]},
            "train_s": (plan["time"]["train_s"], run["train"]),
            "backward_s": (plan["time"]["backward_s"], run["backward"]),
            "train_peak_gib": (plan["memory"]["train_bytes"] / 2**30, run["peak_gib"]["train"]),
            "backward_peak_gib": (plan["memory"]["backward_bytes"] / 2**30,
                                  run["peak_gib"]["backward"]),
            "baseline_gib": run.get("baseline_gib"),
            "measured_totals_s": run["totals"],
        }
        pairs = {k: v for k, v in rows[name].items() if isinstance(v, tuple)}
        print(f"{name}: " + ", ".join(f"{k} {p:.2f} / {m:.2f} ({p / m:.2f}x)"
                                      for k, (p, m) in pairs.items()), flush=True)
    return {"target": TARGET, "repeat": repeat, "rows": rows}


def table(data: dict) -> str:
    lines = ["# `magic plan` against measured runs (CPU)", "",
             "Predicted / measured (each phase's median of "
             f"{data['repeat']} fresh runs), and their ratio; peak memory is the process's resident "
             "memory (imports included). Written by `benchmarks/plan_accuracy.py`; the range is "
             "the measured totals (training + query + backward).", "",
             "| config | schedule | train s | backward s | train peak GiB | backward peak GiB "
             "| measured totals s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in data["rows"].items():
        cells = [f"{p:.2f} / {m:.2f} ({p / m:.2f}x)" for p, m in
                 (r["train_s"], r["backward_s"], r["train_peak_gib"], r["backward_peak_gib"])]
        sched = r["schedule"]
        lines.append(f"| {name} | {sched['predicted']}"
                     + ("" if sched["predicted"] == sched["measured"] else
                        f" (ran {sched['measured']})") + f" | {' | '.join(cells)} | "
                     + ", ".join(f"{t:.2f}" for t in r["measured_totals_s"]) + " |")
    return "\n".join(lines) + "\n"


def fit_from_results() -> dict:
    """The CPU rate solving the committed calibration runs of cpu and cpu-small
    (`plan_time.fit`; results/plan-calibration-*.json, each phase's median of 3 runs)."""
    from magic_driver.plan_time import Work, fit

    runs = []
    for name in ("cpu", "cpu-small"):
        plan = predicted(CONFIGS[name])
        result = json.loads((RESULTS / f"plan-calibration-{name}.json").read_text())
        # Calibrations before --calibrate were attribution.py's output (results.magic_core).
        measured = result.get("magic_core") or result["results"]["magic_core"]
        runs.append((Work(
            flops_per_step=plan["time"]["flops_per_step_per_rank"], layers=plan["model"]["layers"],
            traffic_per_step=0.0, steps=plan["run"]["steps"],
            replayed_steps=measured["replayed_steps"],
            replayed_updates=measured["replayed_updates"],
            state_bytes=plan["state"]["bytes_per_rank"]), measured["train"], measured["backward"]))
    return fit(runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CONFIGS), help="comma-separated configs")
    parser.add_argument("--repeat", type=int, default=3,
                        help="measure each config this many times; compare with the median")
    parser.add_argument("--fit", action="store_true", help="print the fitted CPU rate and stop")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure the calibration presets (cpu, cpu-small) and stop")
    args = parser.parse_args()
    if args.calibrate:
        calibrate(["cpu-small", "cpu"], args.repeat)
        print(json.dumps(fit_from_results(), indent=2))
        return
    if args.fit:
        print(json.dumps(fit_from_results(), indent=2))
        return
    data = compare(args.only.split(","), args.repeat)
    (RESULTS / "plan-accuracy.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "plan-accuracy.md").write_text(table(data))
    print(table(data))


if __name__ == "__main__":
    main()
