"""A torch lacking one patchable part, or DTensor altogether, each in a fresh interpreter.

The real torch is made to look like such a build inside the child only: a
class is deleted from its module before patching, or a meta-path finder
refuses torch.distributed.tensor the way an interpreter without it would.
"""

import json
import subprocess
import sys

import pytest

DTENSOR = "torch.distributed.tensor"

# Delete module.attr, then apply(): what is reported, and what is warned.
WITHOUT_PART = r"""
import importlib, json, sys, warnings
import torch.distributed.tensor
import torch_dtensor_patch as tdp

stock = {k: v.state for k, v in tdp.status().items()}
delattr(importlib.import_module(sys.argv[1]), sys.argv[2])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    returned = tdp.apply()
print(json.dumps({
    "stock": stock,
    "returned": {k: [v.state, v.detail] for k, v in returned.items()},
    "now": {k: v.state for k, v in tdp.status().items()},
    "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
}))
"""

# The start-up hook fires at the end of torch.distributed.tensor's import;
# _api is deleted from before that, the moment _api itself has loaded.
HOOK_WITHOUT_TO_LOCAL = r"""
import json
import torch_dtensor_patch._autoload
from torch_dtensor_patch._import_hook import when_imported

when_imported("torch.distributed.tensor._api", lambda api: delattr(api, "_ToTorchTensor"))
import torch.distributed.tensor
import torch_dtensor_patch as tdp

print(json.dumps({
    "stock": {k: v.state for k, v in tdp.status(stock=True).items()},
    "now": {k: v.state for k, v in tdp.status().items()},
}))
"""

# What an interpreter without DTensor does on import.
NO_DTENSOR_SITECUSTOMIZE = f"""
import sys

class _NoDTensor:
    def find_spec(self, name, path=None, target=None):
        if name == {DTENSOR!r} or name.startswith({DTENSOR!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NoDTensor())
"""


def _run(code, env, *args):
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def _patched_as_usual(stock, now, skip):
    """Every component but ``skip`` ends where apply() takes it on a complete torch."""
    for name, state in stock.items():
        if name not in skip:
            assert now[name] == ("patched" if state == "missing" else state), (name, stock, now)


@pytest.mark.parametrize("component, module, attr", [
    ("redistribute", f"{DTENSOR}._redistribute", "Redistribute"),
    ("to_local", f"{DTENSOR}._api", "_ToTorchTensor"),
    ("from_local", f"{DTENSOR}._api", "_FromTorchTensor"),
])
def test_apply_patches_the_rest_when_a_part_is_missing(python_env, component, module, attr):
    got, _ = _run(WITHOUT_PART, python_env(TORCH_DTENSOR_PATCH="0"), module, attr)
    state, detail = got["returned"][component]
    assert state == "unavailable" and attr in detail, got
    assert got["now"][component] == "unavailable"
    _patched_as_usual(got["stock"], got["now"], skip={component})
    assert len(got["warnings"]) == 1, got
    assert f"could not patch {component} " in got["warnings"][0] and attr in got["warnings"][0]


def test_a_replacement_that_cannot_be_built_skips_only_its_components(python_env):
    # Both the redistribute and the from_local replacement move gradients with
    # redistribute_local_tensor; to_local's does not need it.
    got, _ = _run(WITHOUT_PART, python_env(TORCH_DTENSOR_PATCH="0"),
                  f"{DTENSOR}._redistribute", "redistribute_local_tensor")
    needs_helper = {"redistribute", "from_local"}
    unbuilt = {n for n in needs_helper if got["stock"][n] == "missing"}
    for name in unbuilt:
        state, detail = got["returned"][name]
        assert state == "missing" and detail.startswith("not patched: its replacement"), got
        assert "redistribute_local_tensor" in detail
    _patched_as_usual(got["stock"], got["now"], skip=needs_helper)
    if unbuilt:
        assert len(got["warnings"]) == 1 and all(n in got["warnings"][0] for n in unbuilt)
    else:
        assert got["warnings"] == []


def test_hook_patches_the_rest_and_warns_when_a_part_is_missing(python_env):
    got, stderr = _run(HOOK_WITHOUT_TO_LOCAL, python_env(TORCH_DTENSOR_PATCH="1"))
    assert got["now"]["to_local"] == "unavailable", got
    _patched_as_usual(got["stock"], got["now"], skip={"to_local"})
    assert "RuntimeWarning: torch_dtensor_patch could not patch to_local " in stderr, stderr
    assert "_ToTorchTensor" in stderr and "automatic patching failed" not in stderr


@pytest.fixture
def no_dtensor_env(python_env, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_DTENSOR_SITECUSTOMIZE)
    env = python_env(TORCH_DTENSOR_PATCH="1")
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    return env


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("verify",)])
def test_cli_without_dtensor_says_so_in_one_line(cli, no_dtensor_env, args):
    out = cli(*args, env=no_dtensor_env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: torch "), out.stderr
    assert f"has no {DTENSOR}" in lines[0] and "install a torch build with distributed" in lines[0]


def test_api_without_dtensor_raises_its_own_error(no_dtensor_env):
    code = (
        "import json, torch, torch_dtensor_patch as tdp\n"
        "raised = {}\n"
        "for name in ('status', 'apply', 'unpatch', 'verify'):\n"
        "    try:\n"
        "        getattr(tdp, name)()\n"
        "        raised[name] = None\n"
        "    except Exception as exc:\n"
        "        raised[name] = [type(exc).__name__, isinstance(exc, tdp.DTensorUnavailable)]\n"
        "print(json.dumps(raised))\n"
    )
    raised, _ = _run(code, no_dtensor_env)
    assert raised == {name: ["DTensorUnavailable", True]
                      for name in ("status", "apply", "unpatch", "verify")}
