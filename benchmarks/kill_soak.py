"""Kill soak: SIGKILL an attribution at random moments, rerun it, compare with the uninterrupted scores.

Each trial starts the same attribution (the ``cpu-small`` preset of
`attribution.py` by default: random token rows, a tiny GPT-NeoX, Adam fp32;
periodic checkpoints every ``--every`` seconds; a memory budget that keeps
some states in memory and spills the rest durably) in a child process with
its own run directory, kills it with SIGKILL at a seeded moment, reruns the
same command to completion and compares the scores with those of an
uninterrupted run (``torch.equal``). The moments cycle through four targets,
so that every phase is hit:

* ``train``, ``query``, ``backward``: a seeded fraction into that phase (as
  long as the uninterrupted run's phase took);
* ``checkpoint``: a seeded delay after a seeded checkpoint write started, within
  as long as that run's mean checkpoint took, so that most land inside the write.

The child logs when each phase starts and each checkpoint write starts and
ends (unbuffered, to ``events.log``), so the table says what the process was
really doing when it died. A trial is ``identical`` when the rerun exits 0 with
``torch.equal`` scores, ``differing`` when its scores differ, ``crashed`` when
the rerun fails.

    python benchmarks/kill_soak.py                 # 30 trials, cpu-small (~20 min on 2 cores)
    python benchmarks/kill_soak.py --trials 5 --preset tiny

Writes benchmarks/results/kill-soak.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from attribution import PRESETS, RESULTS, _model, _query_rows, _rows  # noqa: E402

# A tiny job for the test suite's few trials.
SIZES = {**PRESETS, "tiny": dict(layers=1, hidden=32, heads=2, seq=16, steps=16, batch=2, vocab=64)}
TARGETS = ("train", "query", "backward", "checkpoint")
EVENTS = "events.log"
SCORES = "scores.safetensors"
DONE_WAIT_S = 900  # a rerun that takes longer has hung
EXIT_PREEMPTED = 75  # magic_driver.exit_codes.EXIT_PREEMPTED


# -- the child: one attribution under a RunControl ------------------------------------
def child(run_dir: Path, preset: str, every: float | None) -> None:
    """The job, logging phases, steps and checkpoint writes (``checkpoint-end`` with the bytes
    it wrote); a stop (SIGTERM/SIGUSR1) exits 75 after the final checkpoint, as `magic` does."""
    import torch
    from magic_core.preemption import Preempted, handle_signals
    from magic_core.progress import ProgressFile
    from magic_core.run_control import RunControl

    torch.set_num_threads(1)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = os.open(run_dir / EVENTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def event(what: str) -> None:
        os.write(log, f"{time.time():.6f} {what}\n".encode())

    class Logged(RunControl):
        def begin(self, phase, total, step=0):
            event(f"phase {phase} {step}")
            super().begin(phase, total, step)

        def after_step(self, phase, step, total, snapshot):
            event(f"step {phase} {step}")
            super().after_step(phase, step, total, snapshot)

        def save(self, phase, step, total, snapshot):
            event(f"checkpoint-start {phase} {step}")
            path = super().save(phase, step, total, snapshot)
            event(f"checkpoint-end {phase} {step} {self.store.last_written}")
            return path

    event("start")
    try:
        with handle_signals(), ProgressFile(run_dir) as progress:
            attribute(SIZES[preset], run_dir, Logged, progress, every)
    except Preempted:
        event("preempted")
        sys.exit(EXIT_PREEMPTED)
    event("done")


def attribute(cfg: dict, run_dir: Path, control_class, progress, every: float | None) -> None:
    """The preset's attribution under ``control_class``; its scores go to RUN_DIR/scores."""
    import magic_core as mc
    from magic_core.atomic import atomic_path
    from magic_core.phase_checkpoint import CheckpointStore
    from safetensors.torch import save_file

    rows = _rows(cfg)
    corpus = mc.TokenizedCorpus(rows, [str(i) for i in range(len(rows))], [""] * len(rows),
                                truncated=0, max_seq_len=cfg["seq"])
    state_bytes = 12 * sum(p.numel() for p in _model(cfg).parameters())
    control = control_class(CheckpointStore(run_dir / "checkpoints", {"soak": cfg}), progress,
                            checkpoint_every=every)
    result = mc.attribute(
        _model(cfg), None, corpus, mc.LanguageModelObjective.from_token_ids(_query_rows(cfg)),
        mc.TrainConfig(optimizer="adam", lr=1e-4, batch_size=cfg["batch"], shuffle=False,
                       precision="fp32", max_seq_len=cfg["seq"]),
        # Two states in memory, the rest spilled durably (listed by reference).
        mc.AttributionConfig(kept_states="sqrt", granularity="per-token",
                             device_memory=str(2 * state_bytes + 4096)),
        device="cpu", progress=False, control=control)
    with atomic_path(run_dir / SCORES) as tmp:
        save_file({"per_example": result.per_example, "per_token": result.per_token}, str(tmp))
    control.finished()


# -- the parent ---------------------------------------------------------------------------
def start(run_dir: Path, preset: str, every: float | None) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--child", str(run_dir), "--preset", preset,
           "--every", str(every or 0)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)


def events(run_dir: Path) -> list[tuple[float, str]]:
    try:
        text = (run_dir / EVENTS).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        stamp, _, what = line.partition(" ")
        out.append((float(stamp), what))
    return out


def timeline(log: list[tuple[float, str]]) -> dict:
    """Phase start offsets and durations, checkpoint writes, of a finished run's event log."""
    t0 = log[0][0]
    starts = {}
    for t, what in log:
        if what.startswith("phase "):
            starts.setdefault(what.split()[1], t - t0)
    end = next(t for t, what in log if what == "done") - t0
    order = sorted(starts, key=starts.get)
    bounds = {p: (starts[p], (starts[order[i + 1]] if i + 1 < len(order) else end))
              for i, p in enumerate(order)}
    saves, opened = [], None
    for t, what in log:
        if what.startswith("checkpoint-start"):
            opened = t
        elif what.startswith("checkpoint-end") and opened is not None:
            saves.append(t - opened)
            opened = None
    return {"phases": bounds, "checkpoint_s": saves, "total_s": end}


def doing_at(log: list[tuple[float, str]], moment: float) -> str:
    """What the child was doing when killed: the phase, or ``checkpoint`` mid-write."""
    state = "setup"
    for t, what in log:
        if t > moment:
            break
        kind, *rest = what.split()
        if kind == "phase":
            state = rest[0]
        elif kind == "checkpoint-start":
            state, phase = "checkpoint", rest[0]
        elif kind == "checkpoint-end":
            state = phase
    return state


def _wait_for_event(run_dir: Path, proc: subprocess.Popen, want, timeout: float = DONE_WAIT_S):
    """The time of the first logged event ``want(what, log)`` accepts, or None if the run ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t, what in events(run_dir):
            if want(what):
                return t
        if proc.poll() is not None:
            return None
        time.sleep(0.002)
    raise TimeoutError(f"{run_dir}: no such event within {timeout} s")


def trial(index: int, target: str, rng: random.Random, reference: dict, work: Path,
          preset: str, every: float, want) -> dict:
    import torch
    from safetensors.torch import load_file

    run_dir = work / f"trial-{index:03d}"
    proc = start(run_dir, preset, every)
    if target == "checkpoint":
        # The k-th checkpoint write (of those the uninterrupted run with this interval made).
        nth = rng.randrange(max(1, reference["checkpoints"]))
        delay = rng.uniform(0, statistics.mean(reference["checkpoint_s"] or [0.01]))
        seen = []

        def want_event(what):
            if what.startswith("checkpoint-start") and what not in seen:
                seen.append(what)
            return len(seen) > nth and what == seen[nth]
    else:
        begin, end = reference["phases"][target]
        delay = rng.uniform(0, max(end - begin, 1e-3))

        def want_event(what):
            return what.startswith(f"phase {target} ")
    anchor = _wait_for_event(run_dir, proc, want_event)
    if anchor is not None:
        time.sleep(max(0.0, anchor + delay - time.time()))
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before_kill = proc.returncode == 0
    doing = "done" if finished_before_kill else doing_at(events(run_dir), killed_at)
    header = run_dir / "checkpoints" / "checkpoint.json"
    durable = json.loads(header.read_text()) if header.is_file() else None

    rerun = start(run_dir, preset, every)
    _, err = rerun.communicate(timeout=DONE_WAIT_S)
    record = {"trial": index, "target": target, "delay_s": round(delay, 4), "killed_in": doing,
              "durable_checkpoint": None if durable is None else [durable["phase"], durable["step"]],
              "rerun_exit": rerun.returncode}
    if rerun.returncode != 0:
        record.update(outcome="crashed", error=err.strip().splitlines()[-1:] if err else [])
        return record
    progress = json.loads((run_dir / "progress.json").read_text())
    resumed = progress.get("resumed_from")
    record["resumed_from"] = None if resumed is None else [resumed["phase"], resumed["step"]]
    got = load_file(run_dir / SCORES)
    same = all(torch.equal(got[k], want[k]) for k in want)
    record["outcome"] = "identical" if same else "differing"
    return record


def soak(trials: int = 30, preset: str = "cpu-small", every: float = 0.5, seed: int = 0,
         work: Path | None = None, log=print, targets: tuple[str, ...] = TARGETS) -> dict:
    """Run the soak; returns the report (see the module docstring). Trial i aims at
    ``targets[i % len(targets)]``."""
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work or tmp)
        # The uninterrupted run with the same interval: the reference scores and timeline.
        base = work / "uninterrupted"
        proc = start(base, preset, every)
        _, err = proc.communicate(timeout=DONE_WAIT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"the uninterrupted run failed: {err}")
        reference = timeline(events(base))
        reference["checkpoints"] = len(reference["checkpoint_s"])
        want = load_file(base / SCORES)
        log(f"uninterrupted: {reference['total_s']:.1f} s, {reference['checkpoints']} checkpoints, "
            f"phases {', '.join(f'{p} {b - a:.1f} s' for p, (a, b) in reference['phases'].items())}")
        rng = random.Random(seed)
        records = []
        for i in range(trials):
            record = trial(i, targets[i % len(targets)], rng, reference, work, preset, every, want)
            records.append(record)
            log(f"trial {i + 1}/{trials}: aimed at {record['target']}, killed in "
                f"{record['killed_in']}, resumed from {record.get('resumed_from')}: {record['outcome']}")
    counts = {k: sum(r["outcome"] == k for r in records) for k in ("identical", "differing", "crashed")}
    return {"preset": preset, "config": SIZES[preset], "checkpoint_every_s": every, "seed": seed,
            "trials": trials, **counts, "reference": reference, "records": records}


def markdown(report: dict) -> str:
    lines = [f"# Kill soak, preset {report['preset']}", "",
             f"{report['trials']} trials of SIGKILL at a seeded moment, each rerun to completion and "
             f"compared with the uninterrupted scores (`torch.equal`); checkpoints every "
             f"{report['checkpoint_every_s']:g} s, seed {report['seed']}.", "",
             "| trials | identical | differing | crashed |", "|---|---|---|---|",
             f"| {report['trials']} | {report['identical']} | {report['differing']} | "
             f"{report['crashed']} |", "",
             "Where the kills landed (what the process was doing), and where the reruns resumed:", "",
             "| killed in | trials | resumed from a checkpoint | started over | identical |",
             "|---|---|---|---|---|"]
    for place in ("setup", "train", "query", "backward", "checkpoint", "done"):
        mine = [r for r in report["records"] if r["killed_in"] == place]
        if mine:
            resumed = sum(r.get("resumed_from") is not None for r in mine)
            lines.append(f"| {place} | {len(mine)} | {resumed} | {len(mine) - resumed} | "
                         f"{sum(r['outcome'] == 'identical' for r in mine)} |")
    lines += ["", "A rerun starts over only when the kill came before the first checkpoint; "
              "`done`: the run had finished before the kill arrived."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--preset", default="cpu-small", choices=sorted(SIZES))
    parser.add_argument("--every", type=float, default=0.5, help="checkpoint interval, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.preset, args.every or None)
        return
    report = soak(args.trials, args.preset, args.every, args.seed)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kill-soak.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (RESULTS / "kill-soak.md").write_text(text)
    print(text)
    sys.exit(0 if report["identical"] == report["trials"] else 1)


if __name__ == "__main__":
    main()
