"""verify(): a real 2-rank gloo double-backward check in a child process."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ._env import enabled

TOLERANCE = 1e-12

# check name -> (function in _verify_checks, components it depends on)
CHECKS = {
    "redistribute_hvp_metagrad": ("redistribute", ("redistribute", "to_local")),
    "from_local_hvp": ("from_local", ("redistribute", "to_local", "from_local")),
}


@dataclass
class CheckResult:
    name: str
    ok: bool
    requires: tuple[str, ...]
    max_error: float | None = None
    first_order_cut: bool | None = None
    strict_error: str | None = None
    error: str | None = None


@dataclass
class VerifyResult:
    ok: bool
    patched: bool
    torch_version: str
    status: dict
    checks: list[CheckResult] = field(default_factory=list)
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _judge(name, requires, ranks) -> CheckResult:
    errors = [r["error"] for r in ranks if "error" in r]
    if errors:
        return CheckResult(name, False, requires, error=errors[0])
    value = ranks[0]["value"]
    worst = max(r["value"]["max_error"] for r in ranks)
    ok = value["strict_error"] is None and not value["first_order_cut"] and worst <= TOLERANCE
    return CheckResult(
        name,
        ok,
        requires,
        max_error=worst,
        first_order_cut=value["first_order_cut"],
        strict_error=value["strict_error"],
    )


def verify(*, patch: bool | None = None, device: str = "cpu", timeout: float = 300) -> VerifyResult:
    """Run the checks on 2 fresh ranks and report exactly what was measured.

    ``patch=None`` follows the environment (TORCH_DTENSOR_PATCH=0 means the
    checks run against torch as installed, which shows what is broken).
    Raises DTensorUnavailable when torch has no torch.distributed.tensor.
    """
    import torch

    from . import _spawn
    from ._components import require_dtensor

    # Fail here, in one line, rather than in two children spawned for nothing.
    require_dtensor()
    patch = enabled() if patch is None else patch
    started = time.monotonic()
    checks: list[CheckResult] = []
    status: dict = {}
    for name, (func, requires) in CHECKS.items():
        run = _spawn.launch(
            f"torch_dtensor_patch._verify_checks:{func}",
            device=device,
            patch="apply" if patch else "off",
            timeout=timeout,
        )
        checks.append(_judge(name, requires, run["ranks"]))
        status = run["ranks"][0].get("patch", {}).get("after", status)
    return VerifyResult(
        ok=all(c.ok for c in checks),
        patched=patch,
        torch_version=torch.__version__,
        status=status,
        checks=checks,
        wall_s=round(time.monotonic() - started, 2),
    )
