"""`magic patch status|verify`: torch-dtensor-patch's own answers, printed for people."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def _dtensor_required():
    """A torch without torch.distributed.tensor is the user's build to change, not a crash."""
    import torch_dtensor_patch as tdp
    from magic_core import ConfigError

    try:
        yield tdp
    except tdp.DTensorUnavailable as exc:
        raise ConfigError(str(exc)) from None


def status_report() -> tuple[dict, str]:
    """The state of each component in this process, as data and as text."""
    with _dtensor_required() as tdp:
        report = {name: s.as_dict() for name, s in tdp.status().items()}
    width = max(len(n) for n in report)
    lines = []
    for name, entry in report.items():
        wrong = " (upstream's is known wrong)" if entry["known_wrong"] else ""
        lines.append(f"{name:<{width}}  {entry['state']:<8}  {entry['detail']}{wrong}")
    return report, "\n".join(lines)


def verify_report(patch: bool | None, device: str) -> tuple[dict, str, bool]:
    """Run the 2-rank double-backward checks; data, text and whether they all passed."""
    with _dtensor_required() as tdp:
        result = tdp.verify(patch=patch, device=device)
    lines = [f"torch {result.torch_version}, patched: {result.patched}, {result.wall_s} s"]
    for check in result.checks:
        why = check.error or check.strict_error or (
            "the first-order gradient was cut from the graph" if check.first_order_cut else "")
        lines.append(f"  {'PASS' if check.ok else 'FAIL'} {check.name}: max error "
                     f"{check.max_error} {why}".rstrip())
    lines.append("OK" if result.ok else "FAILED")
    return result.as_dict(), "\n".join(lines), result.ok
