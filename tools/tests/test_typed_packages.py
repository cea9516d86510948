"""Every package ships `py.typed` (PEP 561), and mypy checks each package's source."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {  # project folder -> import package
    "packages/magic-datasets": "magic_datasets",
    "packages/magic-core": "magic_core",
    "packages/magic-unlearn": "magic_unlearn",
    "packages/torch-dtensor-patch": "torch_dtensor_patch",
    "tools": "magic_driver",
}


@pytest.mark.parametrize("folder, package", sorted(PACKAGES.items()))
def test_the_package_ships_py_typed(folder, package):
    assert (ROOT / folder / "src" / package / "py.typed").is_file()
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
    tool = project.get("tool", {})
    if "hatch" in tool:  # hatchling ships every file of the package folder
        assert f"src/{package}" in tool["hatch"]["build"]["targets"]["wheel"]["packages"]
    else:
        assert "py.typed" in tool["setuptools"]["package-data"][package]


def test_mypy_checks_every_package_source():
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert set(mypy["files"]) == {f"{folder}/src" for folder in PACKAGES}
    assert mypy["check_untyped_defs"] is True
