"""progress.json takes the phases its caller declares; core names none of its callers'."""

import ast
import importlib.util
import json
from pathlib import Path

import pytest
from magic_core.progress import ProgressFile

SRC = Path(__file__).resolve().parents[2]  # packages/


def test_declared_phases_are_recorded_in_the_unchanged_format(tmp_path):
    with ProgressFile(tmp_path, phases=("unlearn", "evaluate")) as progress:
        progress.declare("relearn", "evaluate")  # a phase may be declared twice
        assert progress.phases == ["unlearn", "evaluate", "relearn"]
        for phase in ("unlearn", "evaluate", "relearn", "evaluate"):
            progress.start(phase, 2)
            progress.advance(2)
    data = json.loads(progress.path.read_text())
    assert set(data) == {"status", "phase", "step", "total", "phases_done", "history",
                         "last_checkpoint", "resumed_from", "updated", "host", "pid",
                         "slurm_job_id"}
    assert data["status"] == "done" and data["phase"] == "done"
    assert data["phases_done"] == ["unlearn", "evaluate", "relearn"]
    assert [h["phase"] for h in data["history"]] == ["unlearn", "evaluate", "relearn", "evaluate"]


def test_a_phase_the_run_did_not_declare_is_refused(tmp_path):
    progress = ProgressFile(tmp_path, phases=("train", "query", "backward"))
    with pytest.raises(ValueError, match="unknown phase 'unlearn'; this run declared train, "
                                         "query, backward"):
        progress.start("unlearn", 3)
    with pytest.raises(ValueError, match="unknown phase 'done'"):
        progress.start("done", 0)
    with pytest.raises(ValueError, match="a phase is a name other than 'done'"):
        progress.declare("done")
    assert not progress.path.exists()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    return {name.split(".")[0] for name in names}


def _sources(package: str) -> list[Path]:
    root = SRC / package / "src"
    files = sorted(root.rglob("*.py"))
    assert files, root
    return files


def test_dependencies_point_one_way():
    """magic-datasets <- magic-core <- magic-unlearn <- the driver."""
    above = {"magic-datasets": {"magic_core", "magic_unlearn", "magic_driver"},
             "magic-core": {"magic_unlearn", "magic_driver"},
             "magic-unlearn": {"magic_driver"}}
    for package, forbidden in above.items():
        for path in _sources(package):
            wrong = _imports(path) & forbidden
            assert not wrong, f"{path.relative_to(SRC)} imports {sorted(wrong)}"


def test_core_takes_only_public_names_of_magic_datasets():
    import magic_datasets

    for path in _sources("magic-core"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("magic_datasets"):
                assert node.module == "magic_datasets", f"{path.name} imports {node.module}"
                for alias in node.names:
                    assert not alias.name.startswith("_"), f"{path.name} imports {alias.name}"
                    assert hasattr(magic_datasets, alias.name) or \
                        importlib.util.find_spec(f"magic_datasets.{alias.name}"), alias.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("magic_datasets.") for a in node.names), path.name


def test_core_names_no_phase_of_its_callers():
    for path in _sources("magic-core"):
        strings = {n.value for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not strings & {"unlearn", "relearn", "evaluate"}, path.name
