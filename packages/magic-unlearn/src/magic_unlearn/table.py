"""Result rows -> one markdown table and one JSON document."""

from __future__ import annotations

import json
from pathlib import Path

from magic_core.atomic import write_text
from magic_core.number_format import exact, fixed

COLUMNS = [
    ("recipe", "recipe"), ("hyper-parameters", "params"),
    ("hazard acc", "forget_accuracy"), ("general acc", "retain_accuracy"),
    ("forget loss", "forget_loss"), ("retain loss", "retain_loss"),
    ("hazard acc after relearn", "relearn_forget_accuracy"),
    ("general acc after relearn", "relearn_retain_accuracy"),
]


def _cell(value) -> str:
    if isinstance(value, dict):  # settings: two runs must never print alike
        return ", ".join(f"{k}={'-' if v is None else exact(v)}" for k, v in value.items())
    return fixed(value)  # measurements


def flat_row(result: dict) -> dict:
    """The table's view of one run's result.json."""
    after, relearned = result["after"], result.get("after_relearn") or {}
    return {
        "recipe": result["recipe"]["name"],
        "params": {**result["recipe"]["options"], **{k: result["optim"][k] for k in
                   ("optimizer", "lr", "batch_size", "steps")}},
        **{k: after[k] for k in ("forget_accuracy", "retain_accuracy", "forget_loss", "retain_loss")},
        "relearn_forget_accuracy": relearned.get("forget_accuracy"),
        "relearn_retain_accuracy": relearned.get("retain_accuracy"),
    }


def markdown(rows: list[dict], base: dict | None = None) -> str:
    lines = ["| " + " | ".join(h for h, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    if base is not None:
        lines.append("| base model | - | " + " | ".join(
            _cell(base.get(k)) for _, k in COLUMNS[2:6]) + " | - | - |")
    lines += ["| " + " | ".join(_cell(r.get(k)) for _, k in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(out_dir: Path, rows: list[dict], base: dict | None = None) -> None:
    write_text(Path(out_dir) / "table.md", markdown(rows, base))
    write_text(Path(out_dir) / "table.json", json.dumps({"base": base, "rows": rows}, indent=2) + "\n")
