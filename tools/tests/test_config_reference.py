"""The docs' job-file reference is generated from the config dataclasses and kept current."""

from __future__ import annotations

import dataclasses
import re
import shutil
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from magic_core import from_mapping
from magic_driver import config_reference as ref
from magic_driver.clusters import ClusterProfile
from magic_driver.jobs import AttributeJob
from magic_driver.slurm_section import SlurmSection
from magic_driver.unlearn_jobs import UnlearnJob

ROOT = Path(__file__).resolve().parents[2]

# Config classes whose fields still carry `#` comments instead of docstrings: their
# modules were being edited when the docstrings came in. Empty this set as they are
# converted; a class of any other module without docstrings fails the test below.
PENDING_DOCSTRINGS = {
}


def test_the_committed_docs_are_current():
    stale = ref.stale_pages(ROOT)
    assert not stale, (f"{', '.join(stale)}: the job-file reference is out of date; run "
                       f"`{ref.REGENERATE}` (python -m magic_driver.config_reference --write)")


def _leaf_paths(cls: type, prefix: str = "") -> set[str]:
    hints = typing.get_type_hints(cls)
    paths = set()
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        section = ref._section_type(hints[f.name])
        if section is None:
            paths.add(path)
        else:
            paths |= _leaf_paths(section, path)
    return paths


@pytest.mark.parametrize("block", ref.BLOCKS, ids=lambda b: b.name)
def test_every_key_a_file_can_have_is_in_its_page(block):
    page = (ROOT / block.page).read_text()
    cls = block.config_class()
    for path in _leaf_paths(cls, block.prefix):
        assert f"| `{path}` |" in page, f"{path} missing from {block.page}"


def test_the_reference_names_keys_added_late():
    page = (ROOT / "docs/configuration.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| `data.long_documents`"))
    assert "`truncate`, `chunk`" in row and "| `truncate` |" in row


@dataclass(frozen=True)
class Inner:
    """An inner section."""

    depth: int = 3
    """How deep.

    Over two lines."""


@dataclass(frozen=True)
class Example:
    # A comment is not a description: one mechanism, the docstring.
    plain: str = "x"
    rate: float | None = None
    """A rate; null: none."""
    mode: typing.Literal["a", "b"] = "a"
    """Pick one."""
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Required:
    name: str
    """No default."""


def test_keys_read_docstrings_types_and_defaults():
    rows = {k.path: k for k in ref.keys(Example)}
    assert rows["plain"] == ref.Key("plain", "string", "x", "")
    assert rows["rate"] == ref.Key("rate", "number or null", "null", "A rate; null: none.")
    assert rows["mode"] == ref.Key("mode", "`a`, `b`", "a", "Pick one.")
    assert rows["inner.depth"] == ref.Key("inner.depth", "integer", "3", "How deep.\n\nOver two lines.")
    assert rows["maybe"].type == "section or null" and "maybe.depth" in rows
    assert rows["items"].type == "list of strings" and rows["items"].default == "[]"
    assert ref.undocumented(Example) == ["plain", "maybe", "items"]


def test_a_required_key_says_so():
    assert list(ref.keys(Required)) == [ref.Key("name", "string", "(required)", "No default.")]


def test_a_subclass_inherits_its_bases_docstrings_and_its_own_defaults():
    @dataclass(frozen=True)
    class Deeper(Inner):
        depth: int = 7

    assert list(ref.keys(Deeper)) == [ref.Key("depth", "integer", "7",
                                              "How deep.\n\nOver two lines.")]


def test_ranges_of_settings_are_shown():
    rows = {k.path: k for k in ref.keys(UnlearnJob)}
    assert rows["optim.lr"].type == "number, > 0"
    assert rows["relearn.n_docs"].type == "integer, >= 1"


def _config_classes(cls: type) -> set[type]:
    hints = typing.get_type_hints(cls)
    found = {cls}
    for f in dataclasses.fields(cls):
        section = ref._section_type(hints[f.name])
        if section is not None:
            found |= _config_classes(section)
    return found


def test_every_config_class_outside_the_pending_modules_has_docstrings():
    classes = set().union(*(_config_classes(b.config_class()) for b in ref.BLOCKS))
    missing = [f"{cls.__module__}.{cls.__name__}.{name}"
               for cls in classes
               if cls.__name__ not in PENDING_DOCSTRINGS.get(cls.__module__, set())
               for name in ref.undocumented(cls) if "." not in name]
    assert not missing, f"fields without a docstring: {missing}"


def test_check_fails_on_a_stale_page_and_write_fixes_it(tmp_path, capsys):
    for page in {b.page for b in ref.BLOCKS}:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, tmp_path / page)
    cluster = tmp_path / "docs/cluster.md"
    cluster.write_text(cluster.read_text().replace("| `slurm.nodes` |", "| `slurm.knots` |"))
    assert ref.main(["--check", "--root", str(tmp_path)]) == 1
    assert "make docs" in capsys.readouterr().err
    assert ref.main(["--write", "--root", str(tmp_path)]) == 0
    assert ref.main(["--check", "--root", str(tmp_path)]) == 0
    assert cluster.read_text() == (ROOT / "docs/cluster.md").read_text()


def test_a_page_without_its_block_is_named(tmp_path):
    block = ref.BLOCKS[0]
    with pytest.raises(SystemExit, match=re.escape(f"{block.page} has no generated block")):
        ref.updated("# no markers here\n", block)


def _yaml_blocks(page: str) -> list[dict]:
    text = (ROOT / page).read_text()
    return [yaml.safe_load(b) for b in re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)]


def test_the_example_job_files_in_the_docs_are_valid():
    examples = ([(AttributeJob, b) for b in _yaml_blocks("docs/configuration.md")]
                + [(UnlearnJob, b) for b in _yaml_blocks("docs/unlearning.md")])
    for mapping in _yaml_blocks("docs/cluster.md"):  # a slurm: section, a profile
        examples += [(SlurmSection, mapping["slurm"])] if "slurm" in mapping \
            else [(ClusterProfile, mapping)]
    assert len(examples) >= 4
    for cls, mapping in examples:
        from_mapping(cls, mapping)
