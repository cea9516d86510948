"""Multiple-choice accuracy the lm-evaluation-harness way: compare answer-letter likelihoods.

The question format is imported as public API of magic-datasets (part of its data
schema), so that accuracy is measured on exactly the prompts its quizzes define.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from magic_datasets import LM_EVAL, answer_continuation, format_prompt


@torch.no_grad()
def multiple_choice_accuracy(model, tokenizer, questions, style: str = LM_EVAL,
                             batch_size: int = 32) -> float:
    """Fraction of questions whose correct letter is the most likely continuation.

    Each question is one forward pass over its prompt; the choice letters are
    single tokens after the prompt in every tokenizer this project targets, so
    comparing next-token log-probabilities is exact (0-shot, metric ``acc``).
    """
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    rows = list(questions)
    correct = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        prompts = [tokenizer(format_prompt(q["question"], list(q["choices"]), style),
                             add_special_tokens=False)["input_ids"] for q in chunk]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, : len(p)] = torch.tensor(p)
            mask[i, : len(p)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        last = torch.tensor([len(p) - 1 for p in prompts], device=device)
        logp = F.log_softmax(logits[torch.arange(len(chunk), device=device), last].float(), -1)
        for i, q in enumerate(chunk):
            letters = [
                tokenizer(answer_continuation(j), add_special_tokens=False)["input_ids"][0]
                for j in range(len(q["choices"]))
            ]
            correct += int(int(torch.argmax(logp[i, letters])) == int(q["answer"]))
    return correct / max(len(rows), 1)
