"""torch-dtensor-patch status [--json] | verify [--json] [--no-patch]"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _hook_line() -> str:
    from ._env import PATCH, enabled

    raw = os.environ.get(PATCH)
    setting = f"{PATCH} unset" if raw is None else f"{PATCH}={raw!r}"
    if not enabled():
        return f"automatic patching: off ({setting})"
    if "torch_dtensor_patch._autoload" not in sys.modules:
        return (
            f"automatic patching: on ({setting}), but the start-up hook did not run in this "
            "interpreter (torch_dtensor_patch.pth is not in its site-packages)"
        )
    return (
        f"automatic patching: on ({setting}): the start-up hook patches this process "
        "as it does every Python process here"
    )


def _stock_label(entry: dict) -> str:
    return "known-wrong" if entry["known_wrong"] else entry["state"]


def _status(args) -> int:
    from ._components import DESCRIPTIONS
    from ._detect import status

    # Reading the stock state looks through the patch at the original backward
    # it keeps, so it is right even after the start-up hook patched this process.
    now = status()
    stock = status(stock=True)
    import torch  # only now: status() turns a torch without DTensor into one clear error

    report: dict[str, dict] = {}
    for name, entry in now.items():
        report[name] = entry.as_dict()
        report[name]["stock"] = {k: v for k, v in stock[name].as_dict().items() if k != "component"}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"torch {torch.__version__}")
    print(_hook_line())
    print(f"{'component':<50} {'as installed':<13} {'in this process':<16} why")
    for name, shown in report.items():
        print(
            f"{DESCRIPTIONS[name]:<50} {_stock_label(shown['stock']):<13} "
            f"{shown['state']:<16} {shown['stock']['detail']}"
        )
    return 0


def _verify(args) -> int:
    from ._verify import verify

    result = verify(patch=False if args.no_patch else None, device=args.device)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(f"torch {result.torch_version}, patched={result.patched}")
        for c in result.checks:
            verdict = "PASS" if c.ok else "FAIL"
            why = (
                c.error
                or c.strict_error
                or ("first-order gradient cut from the graph" if c.first_order_cut else "")
            )
            print(f"  {verdict} {c.name}: max error {c.max_error} {why}".rstrip())
        print("OK" if result.ok else "FAILED")
    return 0 if result.ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="torch-dtensor-patch")
    sub = parser.add_subparsers(dest="command", required=True)
    p_status = sub.add_parser(
        "status", help="per component: what torch as installed has, and what this process runs"
    )
    p_status.add_argument("--json", action="store_true")
    p_status.set_defaults(run=_status)
    p_verify = sub.add_parser("verify", help="2-rank gloo double-backward check")
    p_verify.add_argument("--json", action="store_true")
    p_verify.add_argument("--no-patch", action="store_true", help="check torch as installed")
    p_verify.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p_verify.set_defaults(run=_verify)
    args = parser.parse_args(argv)
    from ._components import DTensorUnavailable

    try:
        return args.run(args)
    except DTensorUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
