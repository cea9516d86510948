"""`magic patch` on a torch built without torch.distributed.tensor: one line, exit 2."""

import os
import subprocess
import sys

import pytest

# What an interpreter without DTensor does on import (the hook included).
NO_DTENSOR = """
import sys

class _NoDTensor:
    def find_spec(self, name, path=None, target=None):
        if name == "torch.distributed.tensor" or name.startswith("torch.distributed.tensor."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoDTensor())
"""


@pytest.mark.parametrize("args", [["patch", "status"], ["patch", "verify"]])
def test_patch_commands_say_one_line_without_dtensor(tmp_path, args):
    (tmp_path / "sitecustomize.py").write_text(NO_DTENSOR)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "magic_driver.cli", *args], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "torch.distributed.tensor" in lines[0] and "Traceback" not in out.stderr
