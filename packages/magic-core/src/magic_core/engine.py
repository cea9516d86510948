"""MAGIC on bergson's engine: train keeping scheduled states, then replay backward.

bergson provides the functional pieces: `Trainer.step` (one optimizer step
on an immutable `TrainerState`, optionally traced so it can be
differentiated), `TrainerState.activate` and `DataStream` (batches carrying
the data weights into the loss). This module owns the loop around them:
which states are kept (in memory, see `keep_schedule`), how the backward
recovers each state, and the vector-Jacobian product through each step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import datasets
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from ._bergson import engine
from .data_parallel import trainer_class
from .errors import ConfigError
from .keep_schedule import kept_gradients, kept_in_training, replay_keep, resolve_schedule
from .memory import PhasePeaks
from .sharding import is_sharded, sharded_trainer_class
from .state_store import StateStore, default_budgets, state_bytes, state_structure


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _world() -> tuple[int, int]:
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def build_stream(
    input_ids: list[list[int]],
    *,
    batch_size: int,
    epochs: int,
    shuffle: bool,
    seed: int,
    per_token: bool,
    dtype: torch.dtype,
    device: torch.device,
):
    """The engine's batch stream over ``epochs`` passes of the documents.

    Data weights have one entry per document (``[N]``) or per token
    (``[N, T]``); every epoch's copy of a document reads the same entries, so
    a score sums the document's influence over all its passes.
    """
    n = len(input_ids)
    rows = []
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).tolist() if shuffle else range(n)
        rows += [{"input_ids": input_ids[j], "doc_ids": j, "example_ids": j} for j in order]
    width = max(len(r) for r in input_ids)
    stream = engine().DataStream(
        datasets.Dataset.from_list(rows), batch_size, device=device,
        weight_shape=(n, width) if per_token else (n,),
    )
    # bergson's stream drops a last partial batch (its documents would score
    # zero) and makes float32 weights (fp64 runs need fp64 weight gradients).
    stream.num_batches = -(-len(rows) // batch_size)
    _check_rows_per_rank(len(rows), batch_size, stream.world_size)
    stream.weights = nn.Parameter(torch.ones(stream.weights.shape, dtype=dtype, device=device))
    return stream


def _check_rows_per_rank(n_rows: int, batch_size: int, world_size: int) -> None:
    # Each rank takes a stride of every batch's rows; a rank left without
    # rows cannot build a batch and would stall the others' collectives.
    smallest = min(batch_size, n_rows % batch_size or batch_size)
    if smallest < world_size:
        raise ConfigError(
            f"a batch of {smallest} rows cannot be split over {world_size} ranks "
            f"({n_rows} rows = epochs x documents, batch_size={batch_size}); use a "
            f"batch_size that is a multiple of {world_size} and divides {n_rows}, or fewer ranks"
        )


def _grad(outputs: list, inputs: list, cotangents: list) -> list:
    """The VJP, with zeros for the inputs the outputs do not depend on."""
    grads = torch.autograd.grad(outputs, inputs, grad_outputs=cotangents, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, since: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - since


class MagicEngine:
    """One attribution run: a model, its data stream and optimizer, and a schedule."""

    # Called after every finished training and backward step as
    # ``on_step(phase, steps_done, loop_state)``; ``loop_state()`` returns what
    # a resumed loop needs (see `phases`). It may raise to stop the run.
    on_step = None

    def __init__(self, model: nn.Module, stream, optimizer, *, kept_states: str = "auto",
                 max_grad_norm: float | None = None, show_progress: bool = True,
                 device_budget: int | None = None, host_budget: int | None = None,
                 spill_dir: str | None = None, adam=None):
        self.model = model
        self.stream = stream
        self.max_grad_norm = max_grad_norm
        self.progress = show_progress and _is_main()
        self.fsdp = is_sharded(model)  # see `sharding`
        trainer = sharded_trainer_class() if self.fsdp else trainer_class()
        self.trainer, self.initial_state = trainer.initialize(model, optimizer)
        # What rebuilds kept and checkpointed states; `train` releases the
        # initial state itself once it is kept (or spilled).
        self.template = state_structure(self.initial_state)
        self.n_steps = len(stream)
        # Adam's update and its part of each step's VJP by formula (see
        # `adam_update`); None (SGD, sharded runs, an unknown optimizer state)
        # leaves them to torchopt and autograd.
        self.adam = (adam if adam is not None and not self.fsdp
                     and adam.applies_to(self.initial_state) else None)
        self.trainer.adam = self.adam
        device = stream.weights.device
        auto_device, auto_host = default_budgets(device)
        self.kept = StateStore(
            device, self.template, spill_dir=spill_dir,
            device_budget=auto_device if device_budget is None else device_budget,
            host_budget=auto_host if host_budget is None else host_budget,
        )
        self.memory = PhasePeaks(device)
        self.keep_schedule = resolve_schedule(
            kept_states, self.n_steps, state_bytes(self.initial_state), self.kept.budgets, spill_dir,
            gradients_apply=not self.fsdp,
        )
        # The ``gradients`` schedule's kept gradients, within the same budgets.
        self.gradients = StateStore(device, self.template, spill_dir=spill_dir,
                                    kind="gradient", shares_budgets_with=self.kept)
        self.final_state = None
        self.losses: list[float] = []
        self.timings = Timings()
        self.replayed_steps = 0  # recomputed training steps
        self.replayed_updates = 0  # updates applied again from kept gradients

    def _step(self, state, index: int, trace: bool = False):
        new = self.trainer.step(state, self.stream[index], trace=trace,
                                max_grad_norm=self.max_grad_norm, fsdp=self.fsdp)
        return new if trace else new.detach_()

    # -- forward -------------------------------------------------------------
    def train(self, start: int = 0, state=None):
        """Train through every step, keeping the scheduled states; returns the final state.

        A resumed run passes ``state``, the state before step ``start``.
        """
        t0 = time.perf_counter()
        self.memory.start("train")
        keep = set(kept_in_training(self.n_steps, self.keep_schedule))
        keep_gradient = kept_gradients(self.n_steps, self.keep_schedule)
        state = (self.initial_state if state is None else state).detach_()
        self.initial_state = None
        for i in tqdm(range(start, self.n_steps), desc="Training", disable=not self.progress,
                      initial=start, total=self.n_steps):
            if i in keep:
                self.kept.keep(i, state)
            self.trainer.record_gradient = (partial(self.gradients.keep, i)
                                            if i in keep_gradient else None)
            try:
                state = self._step(state, i)
            finally:
                self.trainer.record_gradient = None
            self.losses.append(float(self.trainer._last_loss))
            if self.on_step is not None:
                self.on_step("train", i + 1, lambda state=state: {"state": state})
        self.final_state = state
        self.memory.stop("train")
        self.timings.add("train", t0)
        return state

    # -- query ---------------------------------------------------------------
    def query_gradients(self, objective) -> dict[str, torch.Tensor]:
        """Gradient of the full query objective at the final state.

        Each rank scores its share of the queries; the all-reduce sums the
        shares, so every rank holds the gradient of the whole objective.
        """
        t0 = time.perf_counter()
        # Sharded, every rank runs the whole objective (see `sharding`).
        rank, world_size = (0, 1) if self.fsdp else _world()
        state = self.final_state
        with state.activate(self.model) as params:
            names = list(params)
            value = objective.contribution(self.model, rank, world_size)
            grads = torch.autograd.grad(value, [params[k] for k in names], allow_unused=True)
        grads = {k: (torch.zeros_like(params[k]) if g is None else g) for k, g in zip(names, grads)}
        value = value.detach()
        if world_size > 1:
            for g in grads.values():
                dist.all_reduce(g)
            dist.all_reduce(value)
        self.query_value = float(value)
        self.timings.add("query", t0)
        return grads

    # -- backward ------------------------------------------------------------
    def _state_before(self, target: int, stack: list):
        """The state before step ``target``, replayed from the nearest kept state."""
        start, state = stack[-1]
        state = self.kept.materialize(state)
        if start == target:
            stack.pop()
            if stack:
                # The next state the backward needs, and the gradients its
                # replay applies: read them while this step runs.
                self.kept.prefetch(stack[-1][1])
                self._prefetch_gradients(stack[-1][0], target - 1)
            return state
        t0 = time.perf_counter()
        next_keep = replay_keep(start, target, self.keep_schedule)
        while start < target:
            if start in self.gradients:
                state = self.trainer.apply_gradient(
                    state, self.gradients.materialize(self.gradients.pop(start)))
                self.replayed_updates += 1
            else:
                state = self._step(state, start)
                self.replayed_steps += 1
            start += 1
            if start == next_keep and start < target:
                stack.append((start, state))
                next_keep = replay_keep(start, target, self.keep_schedule)
        self.timings.add("replay", t0)
        return state

    def _prefetch_gradients(self, start: int, target: int) -> None:
        """Start reading the kept gradients a replay from ``start`` to ``target`` applies."""
        for i in range(start, target):
            self.gradients.prefetch(self.gradients.get(i))

    def _step_vjp(self, state, index: int, param_cot: list, opt_cot: list):
        """Cotangents of the state before step ``index`` and of the data weights."""
        weights = self.stream.weights
        params = list(state.params.values())
        if self.adam is None:
            inputs = state.differentiable_tensors()
            outputs = self._step(state, index, trace=True).differentiable_tensors()
            grads = _grad(outputs, inputs + [weights], param_cot + opt_cot)
            return grads[: len(params)], grads[len(params): len(inputs)], grads[-1]
        gradient = self.trainer.gradient(state, self.stream[index], max_grad_norm=self.max_grad_norm)
        direct, grad_cot, opt_cot = self.adam.vjp(state, gradient, param_cot, opt_cot)
        names = list(state.params)
        pulled = _grad([gradient[k] for k in names], params + [weights], [grad_cot[k] for k in names])
        return [d + p for d, p in zip(direct, pulled)], opt_cot, pulled[-1]

    def backward(self, query_grads: dict[str, torch.Tensor] | None,
                 resume: dict | None = None) -> torch.Tensor:
        """d(query)/d(data weights), by a vector-Jacobian product through every step.

        With several ranks each one carries a share of every cotangent, the
        true cotangent being the sum of the shares (see `data_parallel`); the
        replicated query gradient is split evenly to start. A resumed run
        passes ``resume`` instead: the loop state ``on_step`` was given.
        """
        t0 = time.perf_counter()
        self.memory.start("backward")
        _, world_size = _world()
        weights = self.stream.weights
        if resume is None:
            shares = 1 if self.fsdp else world_size  # sharded cotangents are whole
            param_cot = [query_grads[k] / shares if shares > 1 else query_grads[k]
                         for k in self.final_state.params]
            opt_cot = [torch.zeros_like(t) for t in self.final_state.differentiable_tensors()[len(param_cot):]]
            weight_grads = torch.zeros_like(weights)
            # Nothing after this point reads the trained state: its memory
            # goes to the backward's working set.
            self.final_state = None
            stack = sorted(self.kept.items())
            first = self.n_steps - 1
            if stack:
                self._prefetch_gradients(stack[-1][0], first)
        else:
            param_cot, opt_cot = resume["param_cot"], resume["opt_cot"]
            weight_grads, stack, first = resume["weight_grads"], resume["stack"], resume["target"]
        self.kept.clear()  # the stack holds the entries now; each is dropped once used
        for target in tqdm(range(first, -1, -1), desc="Backward", disable=not self.progress,
                           initial=self.n_steps - 1 - first, total=self.n_steps):
            state = self._state_before(target, stack)
            state.detach_()
            state.requires_grad = True
            weights.requires_grad_(True)
            param_cot, opt_cot, weight_cot = self._step_vjp(state, target, param_cot, opt_cot)
            weight_grads += weight_cot
            del state, weight_cot
            if self.on_step is not None:
                loop = {"target": target - 1, "param_cot": param_cot, "opt_cot": opt_cot,
                        "weight_grads": weight_grads, "stack": stack}
                self.on_step("backward", self.n_steps - target, lambda loop=loop: loop)
        weights.requires_grad_(False)
        self.kept.close()
        self.gradients.close()
        self.memory.stop("backward")
        self.memory.close()
        if world_size > 1:
            # Each rank holds its share: the weight gradients of its own rows.
            dist.all_reduce(weight_grads)
            if self.fsdp:
                weight_grads /= world_size  # see `sharding`
        self.timings.add("backward", t0)
        return weight_grads.detach()
