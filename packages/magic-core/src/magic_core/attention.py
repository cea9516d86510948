"""Attention that is exact in the model's precision and twice differentiable.

transformers' eager attention for GPT-NeoX (and others) runs its softmax in
float32 even in a float64 model, which puts float32 rounding into "float64"
scores; its SDPA/flash kernels have no double backward. The attribution run
therefore uses this plain implementation, registered under its own name
through transformers' public attention registry.
"""

from __future__ import annotations

import torch
from torch import nn

NAME = "magic_exact"


def exact_attention(module: nn.Module, query, key, value, attention_mask, scaling=None,
                    dropout: float = 0.0, softcap: float | None = None, **kwargs):
    if key.shape[1] != query.shape[1]:  # grouped-query attention
        repeat = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(repeat, 1), value.repeat_interleave(repeat, 1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    dtype = torch.promote_types(query.dtype, torch.float32)
    weights = nn.functional.softmax(scores, dim=-1, dtype=dtype).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def use_exact_attention(model: nn.Module) -> None:
    """Switch a transformers model to `exact_attention` (other modules are left as they are)."""
    switch = getattr(model, "set_attn_implementation", None)
    if switch is None:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, exact_attention)
    AttentionMaskInterface.register(NAME, eager_mask)
    switch(NAME)
