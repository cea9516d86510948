"""torch-dtensor-patch status [--json] | verify [--json] [--no-patch]"""

from __future__ import annotations

import argparse
import json
import sys


def _status(args) -> int:
    from ._components import DESCRIPTIONS
    from ._detect import status

    report = {name: s.as_dict() for name, s in status().items()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, entry in report.items():
        wrong = " (upstream known-wrong)" if entry["known_wrong"] else ""
        print(f"{DESCRIPTIONS[name]:<50} {entry['state']:<9}{wrong}  {entry['detail']}")
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
    p_status = sub.add_parser("status", help="report upstream/patched/missing per component")
    p_status.add_argument("--json", action="store_true")
    p_status.set_defaults(run=_status)
    p_verify = sub.add_parser("verify", help="2-rank gloo double-backward check")
    p_verify.add_argument("--json", action="store_true")
    p_verify.add_argument("--no-patch", action="store_true", help="check torch as installed")
    p_verify.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p_verify.set_defaults(run=_verify)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
