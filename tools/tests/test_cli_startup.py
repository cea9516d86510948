"""`magic` answers help, version, completion and the listing commands without torch.

Each command runs in a fresh interpreter (this one has torch loaded already)
that then reports which heavy packages it imported.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("torch", "transformers", "bergson")

# Runs `magic ARGS...` in-process, as the console script would, then prints the
# heavy packages it imported as the last line of stdout.
RUN_COMMAND = f"HEAVY = {HEAVY!r}\n" + textwrap.dedent("""\
    import json, sys
    from magic_driver.cli import main
    try:
        main.main(sys.argv[1:], prog_name="magic", standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    print()
    print(json.dumps({"exit": code, "heavy": [m for m in HEAVY if m in sys.modules]}))
""")


def _magic(args, cwd, env=None):
    proc = subprocess.run([sys.executable, "-c", RUN_COMMAND, *args], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    output, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    return output, json.loads(last)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIC_CLUSTER_CONFIG", str(tmp_path / "profiles"))
    monkeypatch.delenv("MAGIC_CLUSTER", raising=False)
    return tmp_path


COMMANDS = {
    "help": ["--help"],
    "version": ["--version"],
    "subcommand help": ["submit", "--help"],
    "datasets list": ["datasets", "list"],
    "presets list": ["presets", "list"],
    "presets show": ["presets", "show", "attr-forget"],
    "clusters list": ["clusters", "list"],
    "completion script": ["completion", "bash"],
    "submit --dry-run": ["submit", "preset:attr-wikitext", "--cluster", "gh200", "--dry-run"],
    "array submit --dry-run": ["submit", "preset:unlearn-bs4-adam", "--array", "--param",
                               "lr=1e-5,1e-4", "--dry-run"],
}


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_command_imports_no_torch(case, home):
    output, report = _magic(COMMANDS[case], home)
    assert report == {"exit": 0, "heavy": []}, output
    assert output.strip()


def test_status_of_a_submitted_run_imports_no_torch(home):
    bin_dir = home / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"  # stands in for Slurm, which is not the subject here
    sbatch.write_text("#!/bin/sh\necho 4242\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    _, submitted = _magic(["submit", "preset:attr-forget"], home, env)
    assert submitted["exit"] == 0
    output, report = _magic(["status", "runs/attr-forget"], home, env)
    assert report == {"exit": 0, "heavy": []}, output
    assert "4242" in output


COMPLETIONS = {
    "command names": ("magic pre", 1, "presets"),
    "preset jobs": ("magic submit preset:attr-w", 2, "preset:attr-wikitext"),
    "cluster profiles": ("magic submit job.yaml --cluster g", 4, "gh200"),
}


@pytest.mark.parametrize("case", sorted(COMPLETIONS))
def test_shell_completion_imports_no_torch(case, home):
    words, cword, expected = COMPLETIONS[case]
    env = {"_MAGIC_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    output, report = _magic([], home, env)
    assert report == {"exit": 0, "heavy": []}, output
    assert f"plain,{expected}" in output.splitlines()


CHECK_PUBLIC_NAMES = f"HEAVY = {HEAVY!r}\n" + textwrap.dedent("""\
    import json, sys
    import_line, package = sys.argv[1], sys.argv[2]
    before = set(sys.modules)
    exec(import_line)
    loaded = sorted(m for m in set(sys.modules) - before if m.startswith(package + "."))
    print(json.dumps({"loaded": loaded, "heavy": [m for m in HEAVY if m in sys.modules]}))
""")


@pytest.mark.parametrize("import_line, package, modules", [
    ("import magic_core, magic_datasets, magic_unlearn", "magic_core", []),
    ("from magic_core import ConfigError", "magic_core", ["magic_core.errors"]),
    ("from magic_core import from_mapping", "magic_core",
     ["magic_core.errors", "magic_core.typed_config"]),
    ("from magic_datasets import DatasetError", "magic_datasets", ["magic_datasets.errors"]),
    ("from magic_unlearn import UnlearnError", "magic_unlearn", ["magic_unlearn.errors"]),
])
def test_a_public_name_imports_only_its_own_module(import_line, package, modules):
    proc = subprocess.run([sys.executable, "-c", CHECK_PUBLIC_NAMES, import_line, package],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"loaded": modules, "heavy": []}


@pytest.mark.parametrize("package", ["magic_core", "magic_datasets", "magic_unlearn"])
def test_every_public_name_still_resolves(package):
    module = __import__(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="missing"):
        module.missing  # noqa: B018


def test_functions_named_like_their_module_stay_functions():
    import importlib

    import magic_unlearn as mu

    # Importing a submodule binds it to the package attribute of the same name.
    importlib.import_module("magic_unlearn.evaluate")
    importlib.import_module("magic_unlearn.relearn")
    assert callable(mu.evaluate) and callable(mu.relearn)
    assert mu.evaluate.__module__ == "magic_unlearn.evaluate"
