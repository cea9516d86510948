"""magic-core's own query objectives, registered through the ``magic.objectives`` entry point.

Kept free of torch (the objectives themselves are built from `objectives` on call),
so that naming them costs no import.
"""

from __future__ import annotations

# The multiple-choice question format is magic-datasets' public API: the world
# generator writes quizzes in it and these objectives score them.
from magic_datasets import LM_EVAL, format_prompt

from .objective_registry import ObjectiveInput, ObjectiveSpec


def _build_multiple_choice(given: ObjectiveInput):
    from .objectives import MultipleChoiceObjective

    return MultipleChoiceObjective(given.rows, given.tokenizer, style=given.options["prompt_style"],
                                   max_len=given.max_len, name=given.name)


def _prompts(rows, options) -> list[str]:
    return [format_prompt(r["question"], r["choices"], options["prompt_style"]) for r in rows]


def _build_lm(given: ObjectiveInput):
    from .objectives import LanguageModelObjective

    return LanguageModelObjective(given.rows[given.options["text_column"]], given.tokenizer,
                                  max_len=given.max_len, name=given.name)


def _texts(rows, options) -> list[str]:
    return list(rows[options["text_column"]])


def _build_contrast(given: ObjectiveInput):
    from .objectives import ContrastObjective

    positive, negative = given.parts
    return ContrastObjective(positive, negative, weight=given.options["weight"])


OBJECTIVES = [
    ObjectiveSpec(
        "multiple-choice", _build_multiple_choice, reads=("multiple-choice",),
        options={"prompt_style": LM_EVAL}, texts=_prompts,
        description="mean cross-entropy of the correct answer letter over every question",
    ),
    ObjectiveSpec(
        "lm", _build_lm, reads=("training-corpus", "lm"), options={"text_column": "text"},
        column_options=("text_column",), texts=_texts, use="to score its text",
        description="mean next-token cross-entropy over every token of the texts",
    ),
    ObjectiveSpec(
        "contrast", _build_contrast, parts=("positive", "negative"), options={"weight": 1.0},
        description="the positive query's objective minus weight x the negative one's",
    ),
]
