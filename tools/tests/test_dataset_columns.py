"""`magic datasets show` describes the columns and text a set really has, by its kind."""

from click.testing import CliRunner
from magic_driver.cli import main


def _show(*args):
    result = CliRunner().invoke(main, ["datasets", "show", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _columns(output: str) -> list[str]:
    block = output.split("columns:\n", 1)[1].split("options:", 1)[0]
    return [line.strip() for line in block.splitlines()]


def test_a_multiple_choice_set_is_described_by_question_choices_and_answer():
    output = _show("world-hazard-mcqa")
    text = next(line for line in output.splitlines() if line.startswith("text:"))
    assert "`question` and `choices` as a multiple-choice prompt" in text
    assert "text column" not in text
    columns = _columns(output)
    assert columns[:4] == ["id: string (required)", "question: string (required)",
                           "choices: list[string] (required)", "answer: int64 (required)"]
    # Columns the plugin does not declare are listed with their loaded type.
    assert "held_out: bool" in columns and "subject: string" in columns
    assert not any(c.startswith("text") for c in columns)


def test_a_corpus_keeps_its_text_column_and_an_unloaded_set_its_declared_ones(tmp_path):
    output = _show("world-attribution")
    assert "text:        the `text` column" in output
    assert "text: string (required)" in _columns(output) and "planted: bool" in _columns(output)

    output = _show("mmlu", "--option", f"data_dir={tmp_path}")  # no local copy: nothing loaded
    assert _columns(output) == ["id: string (required)", "question: string (required)",
                                "choices: list[string] (required)",
                                "answer: int64 (index) (required)", "subject: string"]
