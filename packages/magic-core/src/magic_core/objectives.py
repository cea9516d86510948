"""Query objectives: the scalar whose dependence on training data is attributed.

Every objective is evaluated at the final trained state. ``contribution``
returns this rank's share of the full objective, so that summing it over
ranks (as an all-reduce of gradients does) gives exactly the full value: a
mean is a local sum divided by the global count, which every rank knows.

The multiple-choice question format (`format_prompt`, `answer_continuation`) is
imported as public API of magic-datasets: it is part of the data schema, shared by
the world generator that writes quizzes and the objective that scores them.
Objectives are named and built through `objective_registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from magic_datasets import LM_EVAL, answer_continuation, format_prompt

from .errors import ConfigError


@dataclass
class _Encoded:
    """Right-padded sequences with, per row, which positions carry a target."""

    input_ids: list[list[int]]
    target_mask: list[list[bool]]  # target_mask[t]: the token at t is a target

    @property
    def count(self) -> int:
        return sum(sum(m) for m in self.target_mask)


def _batch(rows: list[list[int]], masks: list[list[bool]], pad_id: int, device):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, : len(r)] = torch.tensor(r)
        attn[i, : len(r)] = 1
        target[i, : len(m)] = torch.tensor(m)
    return ids.to(device), attn.to(device), target.to(device)


def _summed_target_nll(model, enc: _Encoded, rows: range, pad_id: int, batch_size: int):
    """Sum of -log p(target token) over the target positions of ``rows``."""
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    total = None
    for start in range(rows.start, rows.stop, batch_size):
        idx = range(start, min(start + batch_size, rows.stop))
        ids, attn, target = _batch(
            [enc.input_ids[i] for i in idx], [enc.target_mask[i] for i in idx], pad_id, device
        )
        logits = model(input_ids=ids, attention_mask=attn).logits
        # logits at t predict the token at t + 1
        logp = F.log_softmax(logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32)), -1)
        nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        part = nll[target[:, 1:]].sum()
        total = part if total is None else total + part
    return total


def _shard(n: int, rank: int, world_size: int) -> range:
    per = -(-n // world_size)
    return range(min(rank * per, n), min((rank + 1) * per, n))


class QueryObjective:
    """Base class: a scalar loss of the model, made of per-token terms."""

    description: str = ""

    def contribution(self, model, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, model) -> torch.Tensor:
        """The full objective in one process."""
        return self.contribution(model, 0, 1)

    def summary(self) -> dict:
        return {"description": self.description}


class _TokenMeanObjective(QueryObjective):
    """Mean negative log-likelihood over the target tokens of encoded rows."""

    def __init__(self, enc: _Encoded, pad_id: int, batch_size: int):
        if enc.count == 0:
            raise ConfigError(f"query {self.description!r} has no target tokens")
        self.enc, self.pad_id, self.batch_size = enc, pad_id, batch_size

    def contribution(self, model, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        rows = _shard(len(self.enc.input_ids), rank, world_size)
        if len(rows) == 0:
            return torch.zeros((), device=next(model.parameters()).device)
        return _summed_target_nll(model, self.enc, rows, self.pad_id, self.batch_size) / self.enc.count

    def summary(self) -> dict:
        return {
            "description": self.description,
            "rows": len(self.enc.input_ids),
            "target_tokens": self.enc.count,
        }


class MultipleChoiceObjective(_TokenMeanObjective):
    """Mean cross-entropy of the correct answer letter, over every question.

    Only answer tokens are scored (never the prompt or padding). A prompt too
    long for ``max_len`` loses tokens from its start, never its answer.
    """

    def __init__(self, questions, tokenizer, style: str = LM_EVAL, max_len: int = 2048,
                 batch_size: int = 16, name: str = "multiple-choice"):
        self.description = f"{name}: mean answer-letter cross-entropy over {len(questions)} questions"
        rows, masks, self.truncated = [], [], 0
        for q in questions:
            choices = list(q["choices"])
            answer = int(q["answer"])
            if not 0 <= answer < len(choices):
                raise ConfigError(
                    f"question {q.get('id', '?')!r} has answer index {answer} but "
                    f"{len(choices)} choices"
                )
            prompt = format_prompt(q["question"], choices, style)
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            full = tokenizer(prompt + answer_continuation(answer), add_special_tokens=False)["input_ids"]
            if full[: len(p_ids)] != p_ids or len(full) == len(p_ids):
                # Tokenizers that merge across the prompt/answer boundary: score the
                # answer tokenized on its own.
                full = p_ids + tokenizer(answer_continuation(answer), add_special_tokens=False)["input_ids"]
            n_answer = len(full) - len(p_ids)
            if len(full) > max_len:
                self.truncated += 1
                full = full[-max_len:]
            rows.append(full)
            masks.append([False] * (len(full) - n_answer) + [True] * n_answer)
        super().__init__(_Encoded(rows, masks), tokenizer.pad_token_id or 0, batch_size)


class LanguageModelObjective(_TokenMeanObjective):
    """Mean next-token cross-entropy over every real token of the texts (EOS included)."""

    def __init__(self, texts, tokenizer, max_len: int = 2048, batch_size: int = 16,
                 name: str = "lm"):
        self.description = f"{name}: mean token cross-entropy over {len(texts)} texts"
        rows = [
            (list(r) + [tokenizer.eos_token_id])[:max_len]
            for r in tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        ]
        masks = [[False] + [True] * (len(r) - 1) for r in rows]
        super().__init__(_Encoded(rows, masks), tokenizer.pad_token_id or 0, batch_size)

    @classmethod
    def from_token_ids(cls, rows: list[list[int]], pad_id: int = 0, batch_size: int = 16,
                       name: str = "lm") -> LanguageModelObjective:
        """The same objective over rows that are already token ids (no EOS added)."""
        self = cls.__new__(cls)
        self.description = f"{name}: mean token cross-entropy over {len(rows)} token rows"
        _TokenMeanObjective.__init__(
            self, _Encoded(rows, [[False] + [True] * (len(r) - 1) for r in rows]), pad_id, batch_size
        )
        return self


@dataclass
class ContrastObjective(QueryObjective):
    """``positive - weight * negative``, e.g. forget-set loss minus retain-set loss.

    A document with a negative score then lowers the forget loss more than it
    lowers the retain loss.
    """

    positive: QueryObjective
    negative: QueryObjective
    weight: float = 1.0
    description: str = field(init=False)

    def __post_init__(self):
        self.description = (
            f"contrast: [{self.positive.description}] - {self.weight} x [{self.negative.description}]"
        )

    def contribution(self, model, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        return self.positive.contribution(model, rank, world_size) - self.weight * (
            self.negative.contribution(model, rank, world_size)
        )

    def summary(self) -> dict:
        return {
            "description": self.description,
            "positive": self.positive.summary(),
            "negative": self.negative.summary(),
            "weight": self.weight,
        }
