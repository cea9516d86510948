"""How a multiple-choice question becomes a prompt and an answer continuation.

One definition shared by attribution queries, accuracy evaluation and the
built-in world's practice questions, so they can never drift apart.
"""

from __future__ import annotations

LETTERS = "ABCDEFGHIJ"

#: lm-evaluation-harness 0-shot MMLU/WMDP format: "{q}\nA. ..\nB. ..\nAnswer:"
LM_EVAL = "lm-eval"
#: the seed scripts' attribution prompt: "Question: {q}\nA) ..\nAnswer:"
SEED = "seed"
PROMPT_STYLES = (LM_EVAL, SEED)


def format_prompt(question: str, choices: list[str], style: str = LM_EVAL) -> str:
    """The prompt, ending right before the answer letter."""
    if len(choices) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} choices are supported, got {len(choices)}")
    if style == LM_EVAL:
        lines = [question.strip()] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    elif style == SEED:
        lines = [f"Question: {question.strip()}"] + [
            f"{LETTERS[i]}) {c}" for i, c in enumerate(choices)
        ]
    else:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {PROMPT_STYLES}")
    return "\n".join(lines) + "\nAnswer:"


def answer_continuation(index: int) -> str:
    """The text the model should produce after the prompt: a space and the letter."""
    return " " + LETTERS[index]
