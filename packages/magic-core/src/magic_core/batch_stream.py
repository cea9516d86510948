"""The training batches of a run, each carrying its rows' data weights.

A run trains ``epochs`` passes over the documents (token rows), each pass in
a seeded random order when ``shuffle`` is set. Consecutive rows make a
batch; the last one may be partial, since every document must be trained
on to have a score. Under torch.distributed each rank takes a stride of
every batch's rows (rank r: rows r, r + W, ...) and pads them to the length
of the batch's longest row, so every rank runs the same shapes.

The data weights are one parameter of ones in the run's dtype (float64
runs need float64 weight gradients): one entry per document (``[N]``) or
per token (``[N, T]``). Every pass over a document reads the same entries,
so its score sums its influence over all passes.

A batch is what the model's forward takes: ``input_ids``, ``labels`` (``-100``
past each row's end), ``shift_loss_mask`` (the positions whose next token is
supervised) and ``example_weight`` (the rows' weights), which the weighted
loss multiplies into each token's loss (see `model_prep`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError

IGNORE = -100  # the label of a position that predicts nothing
PAD_TOKEN = 0  # past a row's end; its label is IGNORE, so its value changes nothing


def check_rows_per_rank(n_rows: int, batch_size: int, world_size: int) -> None:
    # Each rank takes a stride of every batch's rows; a rank left without
    # rows cannot build a batch and would stall the others' collectives.
    smallest = min(batch_size, n_rows % batch_size or batch_size)
    if smallest < world_size:
        raise ConfigError(
            f"a batch of {smallest} rows cannot be split over {world_size} ranks "
            f"({n_rows} rows = epochs x documents, batch_size={batch_size}); use a "
            f"batch_size that is a multiple of {world_size} and divides {n_rows}, or fewer ranks"
        )


class BatchStream:
    """``epochs`` passes over ``input_ids`` in batches of ``batch_size`` rows; ``stream[i]`` is batch i."""

    def __init__(self, input_ids: list[list[int]], *, batch_size: int, epochs: int, shuffle: bool,
                 seed: int, per_token: bool, dtype: torch.dtype, device: str | torch.device):
        self.input_ids = input_ids
        self.batch_size = batch_size
        self.device = torch.device(device)
        n = len(input_ids)
        self.n_documents = n
        generator = torch.Generator().manual_seed(seed)
        # order[k]: the document of row k (row k is in pass k // n).
        self.order: list[int] = []
        for _ in range(epochs):
            self.order += torch.randperm(n, generator=generator).tolist() if shuffle else range(n)
        self.rank, self.world_size = (
            (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1))
        check_rows_per_rank(len(self.order), batch_size, self.world_size)
        width = max(len(r) for r in input_ids)
        self.weights = nn.Parameter(
            torch.ones((n, width) if per_token else (n,), dtype=dtype, device=self.device))

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def rows(self, i: int) -> range:
        """The positions in `order` of batch ``i``'s rows, every rank's."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} of a stream of {len(self)}")
        return range(i * self.batch_size, min((i + 1) * self.batch_size, len(self.order)))

    def documents(self, i: int) -> list[int]:
        """The documents batch ``i`` trains on, every rank's, in row order."""
        return [self.order[k] for k in self.rows(i)]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """This rank's share of batch ``i``."""
        batch = self.documents(i)
        mine = batch[self.rank:: self.world_size]
        length = max(len(self.input_ids[d]) for d in batch)
        tokens = [self.input_ids[d] for d in mine]
        input_ids = torch.tensor([t + [PAD_TOKEN] * (length - len(t)) for t in tokens],
                                 dtype=torch.long, device=self.device)
        labels = torch.tensor([t + [IGNORE] * (length - len(t)) for t in tokens],
                              dtype=torch.long, device=self.device)
        shift_loss_mask = torch.zeros_like(labels, dtype=torch.bool)
        shift_loss_mask[:, :-1] = labels[:, 1:] != IGNORE
        docs = torch.tensor(mine, device=self.device)
        weights = self.weights[docs] if self.weights.ndim == 1 else self.weights[docs, :length]
        return {"input_ids": input_ids, "labels": labels, "example_weight": weights,
                "shift_loss_mask": shift_loss_mask}

    def training_order(self) -> dict[str, list[int]]:
        """Which document each step trained on, one entry per row: ``step``, ``epoch``, ``document``.

        The same for any number of ranks (a batch's rows, not a rank's share).
        """
        order: dict[str, list[int]] = {"step": [], "epoch": [], "document": []}
        for i in range(len(self)):
            for k in self.rows(i):
                order["step"].append(i)
                order["epoch"].append(k // self.n_documents)
                order["document"].append(self.order[k])
        return order
