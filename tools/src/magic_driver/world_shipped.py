"""The default world's base model, shipped with the package and verified on load.

Training it anew gives other weights on another machine (thread count and CPU
kernels change the order of floating-point sums), and the demo's figures
moved with them. So the weights the README's figures come from are part of
the package, and their sha256 digests are recorded here: a damaged or
replaced file is refused in one line instead of giving other numbers.

Regenerate (after changing the world, the model size or its recipe)::

    .venv/bin/python -m magic_driver.world_shipped --write-shipped

which trains on one thread, writes the files under ``world_model/`` and
rewrites ``world_model_digests.py``; then rerun the demo and update the figures
in README.md and docs/built-in-world.md.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from magic_core import ConfigError

from .world_model_digests import SHIPPED_SHA256

SHIPPED_DIR = Path(__file__).parent / "world_model"
DIGESTS_MODULE = Path(__file__).parent / "world_model_digests.py"
REGENERATE = "python -m magic_driver.world_shipped --write-shipped"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verified_shipped_dir(folder: Path | None = None,
                         expected: dict[str, str] | None = None) -> Path:
    """``folder`` (the shipped one) once every recorded file in it has its recorded digest."""
    folder = SHIPPED_DIR if folder is None else folder
    expected = SHIPPED_SHA256 if expected is None else expected
    if not expected:
        raise ConfigError(f"no digests are recorded for the built-in world's shipped base model; "
                          f"regenerate it: {REGENERATE}")
    for name, digest in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"the built-in world's shipped base model lacks {path}; reinstall "
                              f"magic-driver (or regenerate it: {REGENERATE})")
        actual = sha256(path)
        if actual != digest:
            raise ConfigError(f"the built-in world's shipped base model file {path} is damaged "
                              f"(sha256 {actual[:12]}..., recorded {digest[:12]}...); reinstall "
                              f"magic-driver (or regenerate it: {REGENERATE})")
    return folder


def digests_source(digests: dict[str, str]) -> str:
    lines = [f"    {name!r}: {digest!r},\n" for name, digest in sorted(digests.items())]
    return ('"""sha256 of each file of the shipped base model (written by\n'
            f'``{REGENERATE}``; do not edit)."""\n\n'
            "SHIPPED_SHA256: dict[str, str] = {\n" + "".join(lines) + "}\n")


def install(built: Path) -> None:
    """Make the model saved in ``built`` the shipped one and record its digests."""
    digests = {p.name: sha256(p) for p in sorted(built.iterdir()) if p.is_file()}
    if SHIPPED_DIR.exists():
        shutil.rmtree(SHIPPED_DIR)
    shutil.copytree(built, SHIPPED_DIR)
    tmp = DIGESTS_MODULE.with_suffix(".tmp")
    tmp.write_text(digests_source(digests))
    tmp.replace(DIGESTS_MODULE)


def write_shipped(progress: bool = True) -> dict:
    """Train the default model, replace the shipped files and their digests; its info."""
    from .world_base import build_world_base

    with tempfile.TemporaryDirectory(prefix=".world-model-") as staging:
        info = build_world_base(Path(staging) / "model", progress=progress)
        install(Path(staging) / "model")
    return info


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-shipped", action="store_true",
                        help="train the default world's base model and replace the shipped files")
    args = parser.parse_args(argv)
    if not args.write_shipped:
        verified_shipped_dir()
        print(f"{SHIPPED_DIR}: every file matches its recorded sha256")
        return 0
    info = write_shipped()
    print(json.dumps({k: info[k] for k in ("parameters", "forget_accuracy", "retain_accuracy",
                                           "prose_only_accuracy", "prose_only_accuracy_by_domain")},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
