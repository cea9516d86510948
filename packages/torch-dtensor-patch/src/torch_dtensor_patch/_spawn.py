"""Run a function on N freshly spawned ranks of a real process group.

Used by verify() and by the test suite. The target is named as
``path/to/file.py:function`` or ``package.module:function`` so that spawned
children can import it whatever import mode the caller used. Every rank
writes its own JSON result, so a rank that dies is visible as a missing file
rather than a hang in the parent.

Command line: python -m torch_dtensor_patch._spawn TARGET OUT_DIR
    [--world-size 2] [--device cpu|cuda] [--patch apply|off|hook|as-is] [--kwargs JSON]
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

PATCH_MODES = ("apply", "off", "hook", "as-is")


def resolve(target: str):
    where, _, func = target.rpartition(":")
    if where.endswith(".py"):
        path = Path(where).resolve()
        name = "_tdp_target_" + path.stem
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path} as a module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, func)


def _set_patch_mode(mode: str) -> dict:
    """Put this rank into the requested patch state; report what it found."""
    import torch.distributed.tensor  # noqa: F401  (fires the .pth hook, if armed)

    from . import _detect, _patching

    before = {k: v.state for k, v in _detect.status().items()}
    if mode == "apply":
        _patching.apply()
    elif mode == "off":
        _patching.unpatch()
    return {"before": before, "after": {k: v.state for k, v in _detect.status().items()}}


def backend_for(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


def _rank_main(rank, world, init_file, out_dir, target, device, patch, kwargs):
    import torch
    import torch.distributed as dist

    result: dict = {"rank": rank}
    try:
        result["patch"] = _set_patch_mode(patch)
        if device == "cuda":
            torch.cuda.set_device(rank % torch.cuda.device_count())
        dist.init_process_group(
            backend_for(device),
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=120),
        )
        try:
            result["value"] = resolve(target)(rank=rank, world_size=world, device=device, **kwargs)
        finally:
            dist.destroy_process_group()
    except BaseException as exc:  # reported to the parent, which decides
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result, default=str))


def run(target, out_dir, *, world_size=2, device="cpu", patch="apply", kwargs=None):
    import torch.multiprocessing as mp

    fd, init_file = tempfile.mkstemp(prefix="tdp-init-")
    os.close(fd)
    os.unlink(init_file)  # FileStore wants to create it
    try:
        mp.spawn(
            _rank_main,
            args=(world_size, init_file, out_dir, target, device, patch, kwargs or {}),
            nprocs=world_size,
            join=True,
        )
    finally:
        if os.path.exists(init_file):
            os.unlink(init_file)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m torch_dtensor_patch._spawn")
    parser.add_argument("target")
    parser.add_argument("out_dir")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--patch", default="apply", choices=PATCH_MODES)
    parser.add_argument("--kwargs", default="{}")
    args = parser.parse_args(argv)
    run(
        args.target,
        args.out_dir,
        world_size=args.world_size,
        device=args.device,
        patch=args.patch,
        kwargs=json.loads(args.kwargs),
    )


if __name__ == "__main__":
    main()


def launch(
    target, *, world_size=2, device="cpu", patch="apply", kwargs=None, timeout=300, env=None
):
    """Run ``target`` on fresh ranks in a child interpreter; return per-rank dicts.

    A child interpreter (rather than spawning from the caller) keeps the
    caller's own patch state and process-group state out of the picture.
    """
    import subprocess

    with tempfile.TemporaryDirectory(prefix="tdp-run-") as out_dir:
        cmd = [
            sys.executable,
            "-m",
            "torch_dtensor_patch._spawn",
            target,
            out_dir,
            "--world-size",
            str(world_size),
            "--device",
            device,
            "--patch",
            patch,
            "--kwargs",
            json.dumps(kwargs or {}),
        ]
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("PYTHONPATH", "")
        here = str(Path(__file__).resolve().parent.parent)
        # Children must import this very copy of the package, installed or not.
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (here, child_env["PYTHONPATH"]) if p)
        proc = subprocess.run(
            cmd, env=child_env, capture_output=True, text=True, timeout=timeout, check=False
        )
        ranks = []
        for rank in range(world_size):
            path = Path(out_dir, f"rank{rank}.json")
            if path.exists():
                ranks.append(json.loads(path.read_text()))
            else:
                ranks.append({"rank": rank, "error": "rank produced no result"})
        return {"returncode": proc.returncode, "stderr": proc.stderr[-4000:], "ranks": ranks}
