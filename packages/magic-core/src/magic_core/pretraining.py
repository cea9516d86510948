"""Plain language-model training (no attribution): base models and baselines."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 800
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    seed: int = 0
    label_smoothing: float = 0.0


def train_language_model(model, token_rows: list[list[int]], cfg: PretrainConfig,
                         pad_id: int = 0, progress: bool = True) -> dict:
    """AdamW with cosine decay on random batches of ``token_rows``; returns a log.

    Padding is excluded from the loss; rows are sampled with a seeded generator.
    """
    device = next(model.parameters()).device
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / cfg.warmup_steps)
        * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / cfg.steps)).item()),
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    width = max(len(r) for r in token_rows)
    ids = torch.full((len(token_rows), width), pad_id, dtype=torch.long)
    real = torch.zeros_like(ids, dtype=torch.bool)
    for i, r in enumerate(token_rows):
        ids[i, : len(r)] = torch.tensor(r)
        real[i, : len(r)] = True
    losses, t0 = [], time.perf_counter()
    for _ in tqdm(range(cfg.steps), desc="Pretraining", disable=not progress):
        pick = torch.randint(len(token_rows), (cfg.batch_size,), generator=gen)
        x, m = ids[pick].to(device), real[pick].to(device)
        logits = model(input_ids=x, attention_mask=m.long()).logits[:, :-1]
        tok = F.cross_entropy(logits.transpose(1, 2).float(), x[:, 1:], reduction="none",
                              label_smoothing=cfg.label_smoothing)
        loss = (tok * m[:, 1:]).sum() / m[:, 1:].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return {"final_loss": sum(losses[-20:]) / min(20, len(losses)),
            "seconds": time.perf_counter() - t0, "steps": cfg.steps}
