"""MAGIC: train keeping scheduled states, then replay backward through every step.

The engine owns the loop around a `TrainingStep` and a `BatchStream`: which
states are kept (`keep_schedule`, held by `state_store`), how the backward
recovers each state, and the vector-Jacobian product through each step.

A run moves through three phases: ``train`` (steps 0 to n - 1), ``query``
(the query gradient at the trained state) and ``backward`` (the VJPs of steps
n - 1 down to 0). After every finished step `MagicEngine.state_dict` returns
what a run stopped there needs to continue, and `load_state_dict` puts it
back (the torch convention); `phases` builds the resumable checkpoints on
those two alone.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .batch_stream import BatchStream
from .keep_schedule import kept_gradients, kept_in_training, replay_keep, resolve_schedule
from .memory import PhasePeaks
from .sharding import is_sharded, local_shard, reshard_like
from .state_files import StoredFile
from .state_store import StateStore, default_budgets, state_bytes, state_structure
from .state_tensors import from_tensors, to_tensors
from .training_step import TrainingStep, take_state

log = logging.getLogger(__name__)


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _world() -> tuple[int, int]:
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _grad(outputs: list, inputs: list, cotangents: list) -> list:
    """The VJP, with zeros for the inputs the outputs do not depend on."""
    grads = torch.autograd.grad(outputs, inputs, grad_outputs=cotangents, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


def _gradient_of(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A kept gradient from its flat (spill-file) form: ``grad.NAME`` -> ``NAME``."""
    return {k[len("grad."):]: t for k, t in tensors.items()}


def _mib(n: int | None) -> str:
    return "unlimited" if n is None else f"{n / 2**20:.0f} MiB"


@dataclass
class BackwardLoop:
    """Where the backward stands: the next step to differentiate and what it carries."""

    target: int
    param_cot: list[torch.Tensor]  # per rank: a share (see `data_parallel`) or a shard
    opt_cot: list[torch.Tensor]
    weight_grads: torch.Tensor
    # [(step, state or Offloaded)], ascending: the kept and replayed states the backward still
    # needs, each an entry of the kept-state store (released when popped)
    stack: list


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, since: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - since


class MagicEngine:
    """One attribution run: a model, its batch stream and optimizer, and a kept-state schedule."""

    # Called as ``on_phase(phase, total, steps_done)`` when a phase starts or
    # continues, and as ``on_step(phase, steps_done, total)`` after every
    # finished training, query and backward step; `state_dict` then describes
    # the run as it is. ``on_step`` may raise to stop the run.
    on_phase = None
    on_step = None

    def __init__(self, model: nn.Module, stream: BatchStream, optimizer, *,
                 kept_states: str = "auto", max_grad_norm: float | None = None,
                 show_progress: bool = True, device_budget: int | None = None,
                 host_budget: int | None = None, spill_dir: str | None = None, adam=None):
        self.model = model
        self.stream = stream
        self.progress = show_progress and _is_main()
        self.fsdp = is_sharded(model)  # see `sharding`
        self.initial_state = take_state(model, optimizer)
        # What rebuilds kept and checkpointed states; `train` releases the
        # initial state itself once it is kept (or spilled).
        self.template = state_structure(self.initial_state)
        self.n_steps = len(stream)
        self.spill_dir = spill_dir
        if adam is not None and not adam.applies_to(self.initial_state):
            adam = None  # an optimizer state the formulas do not know: torchopt's update
        # Adam's part of each step's VJP by formula (see `adam_update`); None
        # (SGD, sharded runs) leaves it to autograd through the traced step.
        self.adam = None if self.fsdp else adam
        self.step = TrainingStep(model, optimizer, max_grad_norm=max_grad_norm, adam=adam,
                                 sharded=self.fsdp)
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
        self.losses: list[float] = []
        self.timings = Timings()
        self.replayed_steps = 0  # recomputed training steps
        self.replayed_updates = 0  # updates applied again from kept gradients
        self.query_value: float | None = None
        # Where the run stands: ``steps_done`` steps of ``phase`` are finished.
        self.phase, self.steps_done = "train", 0
        self._state = self.initial_state  # train: the state before the next step; query: the trained one
        self._query_grads: dict[str, torch.Tensor] | None = None
        self._backward: BackwardLoop | None = None
        log.info(self.describe_plan(kept_states, spill_dir))

    def describe_plan(self, requested: str, spill_dir: str | None) -> str:
        """The resolved plan in one line: steps, ranks, sharding, kept states, store tiers."""
        _, world_size = _world()
        kept = len(kept_in_training(self.n_steps, self.keep_schedule))
        budgets = self.kept.budgets
        return (
            f"attribution plan: {self.n_steps} steps on {world_size} rank(s), sharding "
            f"{'fsdp' if self.fsdp else 'none'}; kept states {self.keep_schedule} (asked "
            f"{requested}): {kept} kept while training, {_mib(state_bytes(self.initial_state))} "
            f"each; store on {self.kept.device}: device tier {_mib(budgets['device'])}, host tier "
            f"{_mib(budgets['host'])}, then disk in {spill_dir or tempfile.gettempdir()}"
        )

    def run(self, objective) -> torch.Tensor:
        """Every phase from where the run stands; returns the data-weight gradients."""
        self.train()
        if self.phase == "query":
            self.query_gradients(objective)
        return self.backward()

    def _starting(self, phase: str, total: int, done: int = 0) -> None:
        if self.on_phase is not None:
            self.on_phase(phase, total, done)

    def _finished(self, phase: str, done: int, total: int) -> None:
        self.phase, self.steps_done = phase, done
        if self.on_step is not None:
            self.on_step(phase, done, total)

    # -- forward -------------------------------------------------------------
    def train(self):
        """Train from where the run stands to the last step, keeping the scheduled states.

        Returns the trained state.
        """
        if self.phase != "train":
            return self._state
        self._starting("train", self.n_steps, self.steps_done)
        t0 = time.perf_counter()
        self.memory.start("train")
        keep = set(kept_in_training(self.n_steps, self.keep_schedule))
        keep_gradient = kept_gradients(self.n_steps, self.keep_schedule)
        state = self._state.detach_()
        self.initial_state = None
        for i in tqdm(range(self.steps_done, self.n_steps), desc="Training",
                      disable=not self.progress, initial=self.steps_done, total=self.n_steps):
            if i in keep:
                self.kept.keep(i, state)
            record = partial(self.gradients.keep, i) if i in keep_gradient else None
            state = self.step(state, self.stream[i], record=record).detach_()
            self.losses.append(self.step.last_loss)
            self._state = state
            self._finished("train", i + 1, self.n_steps)
        self.phase, self.steps_done = "query", 0
        self.memory.stop("train")
        self.timings.add("train", t0)
        return state

    # -- query ---------------------------------------------------------------
    def query_gradients(self, objective) -> dict[str, torch.Tensor]:
        """Gradient of the full query objective at the trained state.

        Each rank scores its share of the queries; the all-reduce sums the
        shares, so every rank holds the gradient of the whole objective.
        """
        if self._query_grads is not None:
            return self._query_grads  # a resumed run that had taken it
        if self.phase != "query":
            raise RuntimeError(f"the query gradient is taken after training, not in {self.phase}")
        self._starting("query", 1)
        t0 = time.perf_counter()
        # Sharded, every rank runs the whole objective (see `sharding`).
        rank, world_size = (0, 1) if self.fsdp else _world()
        with self._state.activate(self.model) as params:
            names = list(params)
            value = objective.contribution(self.model, rank, world_size)
            pulled = torch.autograd.grad(value, [params[k] for k in names], allow_unused=True)
        grads = {k: (torch.zeros_like(params[k]) if g is None else g) for k, g in zip(names, pulled)}
        value = value.detach()
        if world_size > 1:
            for g in grads.values():
                dist.all_reduce(g)
            dist.all_reduce(value)
        self.query_value = float(value)
        self._query_grads = grads
        self.timings.add("query", t0)
        self._finished("query", 1, 1)
        return grads

    # -- backward ------------------------------------------------------------
    def _state_before(self, target: int, stack: list):
        """The state before step ``target``, replayed from the nearest kept state."""
        start, entry = stack[-1]
        state = self.kept.materialize(entry)
        if start == target:
            stack.pop()
            self.kept.release(entry)
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
                kept = self.gradients.pop(start)
                gradient = self.gradients.materialize(kept)
                self.gradients.release(kept)
                state = self.step.update(state, gradient)
                self.replayed_updates += 1
            else:
                state = self.step(state, self.stream[start]).detach_()
                self.replayed_steps += 1
            start += 1
            if start == next_keep and start < target:
                # Within the store's budgets like a kept state: the device, then host, then disk.
                stack.append((start, self.kept.hold(start, state)))
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
        batch = self.stream[index]
        params = list(state.params.values())
        if self.adam is None:
            inputs = state.differentiable_tensors()
            outputs = self.step(state, batch, trace=True).differentiable_tensors()
            grads = _grad(outputs, inputs + [weights], param_cot + opt_cot)
            return grads[: len(params)], grads[len(params): len(inputs)], grads[-1]
        gradient = self.step.gradient(state, batch, trace=True)
        direct, grad_cot, opt_cot = self.adam.vjp(state, gradient, param_cot, opt_cot)
        names = list(state.params)
        pulled = _grad([gradient[k] for k in names], params + [weights], [grad_cot[k] for k in names])
        return [d + p for d, p in zip(direct, pulled)], opt_cot, pulled[-1]

    def _start_backward(self, query_grads: dict[str, torch.Tensor]) -> None:
        _, world_size = _world()
        shares = 1 if self.fsdp else world_size  # sharded cotangents are whole
        state = self._state
        param_cot = [query_grads[k] / shares if shares > 1 else query_grads[k] for k in state.params]
        opt_cot = [torch.zeros_like(t) for t in state.differentiable_tensors()[len(param_cot):]]
        stack = sorted(self.kept.items())
        if stack:
            self._prefetch_gradients(stack[-1][0], self.n_steps - 1)
        self._backward = BackwardLoop(self.n_steps - 1, param_cot, opt_cot,
                                      torch.zeros_like(self.stream.weights), stack)
        # Nothing after this point reads the trained state: its memory goes
        # to the backward's working set. The stack holds the kept states now;
        # each is dropped once used.
        self._state = self._query_grads = None
        self.kept.clear()
        self.phase, self.steps_done = "backward", 0

    def backward(self, query_grads: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """d(query)/d(data weights), by a vector-Jacobian product through every step.

        With several ranks each one carries a share of every cotangent, the
        true cotangent being the sum of the shares (see `data_parallel`); the
        replicated query gradient is split evenly to start. ``query_grads``
        defaults to what `query_gradients` returned; a run resumed within the
        backward continues where it stopped.
        """
        if self.phase != "backward":
            query_grads = self._query_grads if query_grads is None else query_grads
            if query_grads is None:
                raise RuntimeError("the backward starts from the query gradient: take it first")
            self._start_backward(query_grads)
            del query_grads
        self._starting("backward", self.n_steps, self.steps_done)
        t0 = time.perf_counter()
        self.memory.start("backward")
        _, world_size = _world()
        weights = self.stream.weights
        loop = self._backward
        assert loop is not None  # set by _start_backward or load_state_dict
        first = loop.target
        for target in tqdm(range(first, -1, -1), desc="Backward", disable=not self.progress,
                           initial=self.n_steps - 1 - first, total=self.n_steps):
            state = self._state_before(target, loop.stack)
            state.detach_()
            state.requires_grad = True
            weights.requires_grad_(True)
            loop.param_cot, loop.opt_cot, weight_cot = self._step_vjp(
                state, target, loop.param_cot, loop.opt_cot)
            loop.weight_grads += weight_cot
            loop.target = target - 1
            del state, weight_cot
            self._finished("backward", self.n_steps - target, self.n_steps)
        weights.requires_grad_(False)
        weight_grads = loop.weight_grads
        self._backward = None
        self.phase, self.steps_done = "done", 0
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

    # -- durable spills (for checkpoints listing them) -------------------------------
    def spill_durably(self, directory) -> None:
        """Spill kept states and gradients into ``directory``, kept and digested for checkpoints."""
        for store in (self.kept, self.gradients):
            store.make_durable(directory)

    def sweep_spills(self, referenced: set) -> None:
        """Delete durable spill files not in ``referenced`` (a killed process's later ones)."""
        for store in (self.kept, self.gradients):
            store.sweep(referenced)

    def release_spills(self, referenced: set) -> None:
        """Delete the durable spill files already used that no checkpoint lists any longer."""
        for store in (self.kept, self.gradients):
            store.collect(referenced)

    # -- state ---------------------------------------------------------------
    def _kept_value(self, store: StateStore, entry, references: bool):
        if references:
            stored = store.file_of(entry)
            if stored is not None:
                return stored
            host = store.host_tensors(entry)
            if host is not None:
                return host if store.kind == "state" else _gradient_of(host)
        item = store.materialize(entry)
        return to_tensors(item) if store.kind == "state" else dict(item)

    def state_dict(self, *, references: bool = False) -> dict:
        """What the run needs to continue from where it stands, as tensors and plain values.

        * ``phase``, ``step``: ``step`` steps of ``phase`` are finished.
        * ``losses`` (float64, one per training step so far), ``timings``,
          ``replayed_steps``, ``replayed_updates``, ``query_value`` (None
          before the query).
        * ``kept``: ``{step: state tensors}``, the states the backward still
          needs (while training, those kept so far; in the backward, the
          states on its stack, replay-kept ones included).
        * ``gradients``: ``{step: {name: tensor}}``, the kept gradients not yet
          applied again (the ``gradients`` schedule).
        * ``state`` (train and query): the state before the next step, or the
          trained state; ``query_gradient`` once the query is taken.
        * ``backward`` (backward): ``target`` (the next step to differentiate),
          ``param_cot``, ``opt_cot`` and ``weight_grads``; per rank (each holds
          its share, see `data_parallel`). Given to `load_state_dict` as None,
          the rank starts with zero shares (one added on resume).
        * ``sharded``: the tensors are this rank's shards (see `sharding`).

        States are flattened by `state_tensors.to_tensors`. Kept states held
        off the device are read back; with ``references``, a kept state or
        gradient in a durable spill file is that `StoredFile` instead (never
        read back), and one in host memory is its host copy.
        """
        sd = {"phase": self.phase, "step": self.steps_done, "sharded": self.fsdp,
              "losses": torch.tensor(self.losses, dtype=torch.float64),
              "timings": dict(self.timings.seconds), "replayed_steps": self.replayed_steps,
              "replayed_updates": self.replayed_updates, "query_value": self.query_value,
              "gradients": {i: self._kept_value(self.gradients, self.gradients[i], references)
                            for i in sorted(self.gradients)}}
        if self.phase == "backward":
            loop = self._backward
            assert loop is not None
            kept = loop.stack
            sd["backward"] = {"target": loop.target,
                              "param_cot": [local_shard(t) for t in loop.param_cot],
                              "opt_cot": [local_shard(t) for t in loop.opt_cot],
                              "weight_grads": loop.weight_grads}
        elif self.phase in ("train", "query"):
            kept = sorted(self.kept.items())
            sd["state"] = to_tensors(self._state)
            if self._query_grads is not None:
                sd["query_gradient"] = {k: local_shard(t) for k, t in self._query_grads.items()}
        else:
            kept = []
        sd["kept"] = {i: self._kept_value(self.kept, s, references) for i, s in kept}
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue from ``state_dict`` (from `state_dict`, possibly of an earlier process).

        The tensors may sit on any device; sharded ones are this rank's shards.
        A kept state or gradient given as a `StoredFile` is adopted by its
        store (by reference when the store is durable).
        """
        sd = state_dict
        if sd["phase"] not in ("train", "query", "backward"):
            raise ValueError(f"cannot continue a run from phase {sd['phase']!r}")
        if sd["sharded"] != self.fsdp:
            raise ValueError("a sharded run's state cannot continue an unsharded run, or back")
        template = self.template
        self.losses = sd["losses"].tolist()
        self.timings.seconds.update(sd["timings"])
        self.replayed_steps, self.replayed_updates = sd["replayed_steps"], sd["replayed_updates"]
        self.query_value = sd["query_value"]
        for i, gradient in sorted(sd["gradients"].items()):
            if isinstance(gradient, StoredFile):
                self.gradients.adopt(i, gradient)
            else:
                self.gradients.keep(i, gradient)
        kept = []
        for i, t in sorted(sd["kept"].items()):
            if isinstance(t, StoredFile):
                self.kept.adopt(i, t)
                kept.append((i, self.kept.pop(i)))
            else:
                kept.append((i, self.kept.hold(i, from_tensors(t, template))))
        self.initial_state = None  # the loaded states replace it
        self.phase, self.steps_done = sd["phase"], sd["step"]
        if sd["phase"] == "backward":
            loop = sd["backward"]
            like = template.differentiable_tensors()  # cotangents are laid out as what they belong to
            n = len(template.params)
            if loop["param_cot"] is None:
                # A rank added on resume holds no share yet (the shares' sum is what counts).
                device = self.stream.weights.device
                loop = {**loop, "weight_grads": torch.zeros_like(self.stream.weights.detach()),
                        "param_cot": [torch.zeros(t.shape, dtype=t.dtype, device=device)
                                      for t in like[:n]],
                        "opt_cot": [torch.zeros(t.shape, dtype=t.dtype, device=device)
                                    for t in like[n:]]}
            self._state = self._query_grads = None
            self._backward = BackwardLoop(
                loop["target"],
                [reshard_like(t, like[i]) for i, t in enumerate(loop["param_cot"])],
                [reshard_like(t, like[n + i]) for i, t in enumerate(loop["opt_cot"])],
                loop["weight_grads"], kept)
            return
        self.kept.update(kept)
        self._state = from_tensors(sd["state"], template)
        query = sd.get("query_gradient")
        self._query_grads = None if query is None else {
            k: reshard_like(t, template.params[k]) for k, t in query.items()}
