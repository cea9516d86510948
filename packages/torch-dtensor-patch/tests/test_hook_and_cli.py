"""The start-up hook and the command line, each in a fresh interpreter."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

PROBE = (
    "import sys, json\n"
    "import torch_dtensor_patch._autoload\n"
    "assert 'torch' not in sys.modules, 'hook imported torch at start-up'\n"
    "import torch.distributed.tensor\n"
    "from torch_dtensor_patch import status\n"
    "print(json.dumps({k: v.state for k, v in status().items()}))\n"
)


def _states(env):
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_hook_does_not_import_torch_and_patches_on_first_import(python_env):
    states = _states(python_env(TORCH_DTENSOR_PATCH="1"))
    assert "missing" not in states.values(), states


@pytest.mark.parametrize("value", ["0", "", " None "])
def test_hook_disabled_by_env(python_env, value):
    states = _states(python_env(TORCH_DTENSOR_PATCH=value))
    assert "patched" not in states.values(), states


def test_hook_stays_on_and_warns_once_for_an_unknown_value(python_env):
    env = python_env(TORCH_DTENSOR_PATCH="maybe")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "missing" not in json.loads(out.stdout.strip().splitlines()[-1]).values()
    assert out.stderr.count("RuntimeWarning") == 1, out.stderr
    assert "TORCH_DTENSOR_PATCH='maybe' is not understood, so it stays on" in out.stderr


def test_hook_from_local_switch(python_env):
    states = _states(python_env(TORCH_DTENSOR_PATCH="1", TORCH_DTENSOR_PATCH_FROM_LOCAL="0"))
    assert states["from_local"] != "patched"


def test_apply_before_dtensor_is_imported_with_the_hook_armed(python_env):
    # apply() imports DTensor, which fires the hook, which calls apply(): no deadlock.
    code = (
        "import json, torch_dtensor_patch._autoload, torch_dtensor_patch as t\n"
        "print(json.dumps({k: v.state for k, v in t.apply().items()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=python_env(TORCH_DTENSOR_PATCH="1"),
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "missing" not in json.loads(out.stdout.strip().splitlines()[-1]).values()


def test_pth_file_installed_when_package_is():
    import torch_dtensor_patch

    site = Path(sysconfig.get_paths()["purelib"])
    if not Path(torch_dtensor_patch.__file__).resolve().is_relative_to(site.resolve()):
        pytest.skip("package runs from its source tree, not an installed wheel")
    assert (site / "torch_dtensor_patch.pth").read_text().strip() == (
        "import torch_dtensor_patch._autoload"
    )


def test_cli_status_json(cli):
    out = cli("status", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {"redistribute", "to_local", "from_local"}
    assert {r["state"] for r in report.values()} <= {"upstream", "patched", "missing"}
    assert {r["stock"]["state"] for r in report.values()} <= {"upstream", "missing"}


# The CLI in a process that the start-up hook patched, installed as a .pth or not.
HOOKED_CLI = (
    "import sys, torch_dtensor_patch._autoload\n"
    "from torch_dtensor_patch.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _hooked_cli(env, *args):
    out = subprocess.run([sys.executable, "-c", HOOKED_CLI, "status", *args], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_cli_status_with_the_hook_on_shows_stock_torch_too(python_env):
    from torch_dtensor_patch._components import DESCRIPTIONS

    off = json.loads(_hooked_cli(python_env(TORCH_DTENSOR_PATCH="0"), "--json"))
    on = json.loads(_hooked_cli(python_env(TORCH_DTENSOR_PATCH="1"), "--json"))
    for name, entry in on.items():
        stock = entry["stock"]
        assert stock == off[name]["stock"] == {k: off[name][k] for k in stock}, name
        assert entry["state"] == ("patched" if stock["state"] == "missing" else stock["state"])
    text = _hooked_cli(python_env(TORCH_DTENSOR_PATCH="1")).splitlines()
    assert text[1].startswith("automatic patching: on (TORCH_DTENSOR_PATCH='1')"), text
    for name, entry in on.items():
        row = next(line for line in text if line.startswith(DESCRIPTIONS[name]))
        stock_label = "known-wrong" if entry["stock"]["known_wrong"] else entry["stock"]["state"]
        assert row[len(DESCRIPTIONS[name]):].split()[:2] == [stock_label, entry["state"]], row


@pytest.mark.slow
def test_cli_verify_exit_code(cli, python_env):
    stock = json.loads(cli("status", "--json", env=python_env(TORCH_DTENSOR_PATCH="0")).stdout)
    from torch_dtensor_patch._env import enabled

    patching = enabled()
    expected_ok = patching or all(r["state"] != "missing" for r in stock.values())
    out = cli("verify", "--json")
    result = json.loads(out.stdout)
    assert (out.returncode == 0) == expected_ok == result["ok"], (out.stdout, out.stderr)
    if expected_ok:
        assert all(c["max_error"] <= 1e-12 for c in result["checks"]), result
