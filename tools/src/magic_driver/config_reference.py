"""The key reference of the docs' job-file pages, generated from the config dataclasses.

Each key's type, allowed values, range and default come from the dataclass
`from_mapping` reads the file into, so the pages cannot list a key the
driver refuses or miss one it accepts. A key's description is its field's
attribute docstring: the string literal on the line after the field::

    @dataclass(frozen=True)
    class OutputSection:
        dir: str = "runs/attribution"
        \"\"\"The run directory (``--out`` overrides it).\"\"\"

Python drops such strings, so they are read here from the source with `ast`
(a subclass inherits its base class's; a field without one gets an empty
description). A class docstring introduces its section.

The pages keep their hand-written prose; only the text between a block's
``<!-- BEGIN generated: NAME -->`` and ``<!-- END generated: NAME -->`` lines
is replaced::

    python -m magic_driver.config_reference --write   # or `make docs`
    python -m magic_driver.config_reference --check   # exit 1, naming the stale pages
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

REGENERATE = "make docs"  # what the stale-docs test tells to run


@dataclass(frozen=True)
class Key:
    """One row of a section's table."""

    path: str
    type: str
    default: str
    doc: str


@dataclass(frozen=True)
class Block:
    """A generated block: the reference of one dataclass, in one page."""

    name: str
    page: str  # relative to the repository root
    load: str  # "module:Class", imported only when rendering
    prefix: str = ""  # key path of the whole class ("slurm"); "" for a job file's top level

    def config_class(self) -> type:
        module, _, name = self.load.partition(":")
        return getattr(__import__(module, fromlist=[name]), name)


BLOCKS = (
    Block("attribute-job", "docs/configuration.md", "magic_driver.jobs:AttributeJob"),
    Block("unlearn-job", "docs/unlearning.md", "magic_driver.unlearn_jobs:UnlearnJob"),
    Block("slurm-section", "docs/cluster.md", "magic_driver.slurm_section:SlurmSection", "slurm"),
    Block("cluster-profile", "docs/cluster.md", "magic_driver.clusters:ClusterProfile"),
)


# --- docstrings ---------------------------------------------------------------------------


def _class_node(cls: type) -> ast.ClassDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a frozen or built-in class)
        return None
    node = ast.parse(source).body[0]
    return node if isinstance(node, ast.ClassDef) else None


def _own_field_docs(cls: type) -> dict[str, str]:
    node = _class_node(cls)
    if node is None:
        return {}
    docs = {}
    for stmt, following in zip(node.body, node.body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[stmt.target.id] = inspect.cleandoc(following.value.value)
    return docs


def field_docs(cls: type) -> dict[str, str]:
    """Each field's attribute docstring; a subclass's own wins over its bases'."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def class_doc(cls: type) -> str:
    """The class's own docstring (not the signature dataclasses puts in its place)."""
    node = _class_node(cls)
    return (ast.get_docstring(node) or "") if node is not None else ""


def undocumented(cls: type, prefix: str = "") -> list[str]:
    """The key paths under ``cls`` whose field has no docstring."""
    return [key.path for key in keys(cls, prefix) if not key.doc]


# --- types and defaults -------------------------------------------------------------------


def _non_none(tp: Any) -> tuple[list[Any], bool]:
    """``X | Y | None`` -> ([X, Y], True); anything else -> ([tp], False)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args, len(args) < len(get_args(tp))
    return [tp], False


def describe_type(tp: Any) -> str:
    """How a job file writes a value of ``tp``, e.g. ``"`sgd`, `adam` or null"``."""
    args, nullable = _non_none(tp)
    text = " or ".join(_describe(a) for a in args)
    return f"{text} or null" if nullable else text


_PLAIN = {int: "integer", float: "number", str: "string", bool: "true/false", Any: "any"}


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return ", ".join(f"`{_yaml_scalar(a)}`" for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "section"
    if origin is tuple:
        args = get_args(tp)
        if args and args[-1] is not Ellipsis:
            return "[" + ", ".join(_describe(a) for a in args) + "]"
        return f"list of {_describe(args[0]) if args else 'any'}"
    if origin is list:
        args = get_args(tp)
        return f"list of {_describe(args[0])}s" if args else "list"
    if origin is dict:
        return "mapping"
    if tp in _PLAIN:
        return _PLAIN[tp]
    return getattr(tp, "__name__", str(tp))


def _bounds(f: dataclasses.Field) -> str:
    from magic_core.typed_config import field_range

    return field_range(f).describe()


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def describe_default(value: Any) -> str:
    """A default as YAML would write it, on one line."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe_default(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe_default(v) for v in value) + "]"
    if dataclasses.is_dataclass(value):
        return "(keys below)"
    return _yaml_scalar(value)


# --- the tables ---------------------------------------------------------------------------


def _section_type(tp: Any) -> type | None:
    """The dataclass a field holds (also when it may be null), else None."""
    args, _ = _non_none(tp)
    if len(args) == 1 and isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def _default(f: dataclasses.Field, instance: Any) -> Any:
    """The field's value in ``instance``, else its declared default (MISSING if required)."""
    if instance is not None:
        return getattr(instance, f.name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def keys(cls: type, prefix: str = "", instance: Any = None) -> Iterator[Key]:
    """Every key under ``cls``, depth first, with the defaults of ``instance`` if given
    (a section's own default may differ from its class's), else the fields' own."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        value = _default(f, instance)
        section = _section_type(hints[f.name])
        if section is not None and value is not None and value is not dataclasses.MISSING:
            yield from keys(section, path, value)
            continue
        bounds = _bounds(f)
        kind = describe_type(hints[f.name]) + (f", {bounds}" if bounds else "")
        default = "(required)" if value is dataclasses.MISSING else describe_default(value)
        yield Key(path, kind, default, docs.get(f.name, ""))
        if section is not None:  # null by default: its keys, when it is given
            yield from keys(section, path)


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, docstring ``literals`` as markdown's `code`."""
    return " ".join(text.split()).replace("``", "`").replace("|", "\\|")


def table(rows: list[Key]) -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{k.path}` | {_cell(k.type)} | `{_cell(k.default)}` | {_cell(k.doc)} |"
              for k in rows]
    return "\n".join(lines)


def render(block: Block) -> str:
    """The markdown of ``block``: one table, or for a whole job file one per section."""
    cls = block.config_class()
    if block.prefix:
        return table(list(keys(cls, block.prefix)))
    instance = cls()
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    sections = [f for f in dataclasses.fields(cls) if _section_type(hints[f.name])]
    top = [k for k in keys(cls) if "." not in k.path]
    parts = ["Top-level keys:", table(top)] if top else []
    for f in sections:
        section = _section_type(hints[f.name])
        assert section is not None
        intro = docs.get(f.name) or class_doc(section)
        parts.append(f"### `{f.name}`")
        if intro:
            parts.append(" ".join(intro.split()).replace("``", "`"))
        parts.append(table(list(keys(section, f.name, getattr(instance, f.name)))))
    return "\n\n".join(parts)


# --- the pages ----------------------------------------------------------------------------


def _markers(name: str) -> tuple[str, str]:
    return (f"<!-- BEGIN generated: {name} (edit the config dataclasses' field docstrings, "
            f"then run `{REGENERATE}`) -->", f"<!-- END generated: {name} -->")


def updated(text: str, block: Block) -> str:
    """``text`` with ``block``'s generated part replaced by a fresh rendering."""
    begin, end = _markers(block.name)
    pattern = re.compile(rf"^<!-- BEGIN generated: {re.escape(block.name)}\b.*?^{re.escape(end)}$",
                         re.S | re.M)
    if not pattern.search(text):
        raise SystemExit(f"error: {block.page} has no generated block {block.name!r}; add the "
                         f"lines {begin!r} and {end!r} where it goes")
    fresh = f"{begin}\n\n{render(block)}\n\n{end}"
    return pattern.sub(lambda _: fresh, text, count=1)


def stale_pages(root: Path, write: bool = False) -> list[str]:
    """The pages under ``root`` whose generated blocks are out of date (rewritten if ``write``)."""
    stale = []
    for page in dict.fromkeys(b.page for b in BLOCKS):
        path = root / page
        old = path.read_text(encoding="utf-8")
        new = old
        for block in (b for b in BLOCKS if b.page == page):
            new = updated(new, block)
        if new != old:
            stale.append(page)
            if write:
                path.write_text(new, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m magic_driver.config_reference",
                                     description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the stale pages")
    mode.add_argument("--check", action="store_true", help="exit 1 if a page is stale")
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="the repository root (default: the current directory)")
    args = parser.parse_args(argv)
    if not (args.root / "docs").is_dir():
        parser.error(f"{args.root} has no docs/ folder; run it in the repository root or "
                     "give --root")
    stale = stale_pages(args.root, write=args.write)
    for page in stale:
        print(f"{'wrote' if args.write else 'stale'}: {page}")
    if stale and args.check:
        print(f"the job-file reference is out of date; run `{REGENERATE}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
