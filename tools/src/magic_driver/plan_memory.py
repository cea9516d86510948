"""Peak memory of one rank in training and in the backward (`magic plan`).

What the engine holds at its worst moment of each phase, in bytes per rank
(``S`` one kept state, ``P`` its parameters, ``G`` a gradient, all this
rank's share; ``P_all``/``G_all`` the whole model's):

training  = kept states and gradients in the device tier (all, at the end)
          + the current state S
          + states waiting to be copied off the device (the store queues at most
            2; a copy overlaps the next steps, so 2 only where every step keeps
            one, ``all``, else 1) and, for ``gradients``, a gradient
          + max(forward activations A_fwd (+ P_all gathered, fsdp),
                the update: G + the new state S (+ P of temporaries where the
                optimizer has no update by formula))
backward  = the device tier's states and gradients (the most at once: kept ones
            taken give their room to the replayed ones the stack keeps)
          + the states held at once beside them: the differentiated one and
            offloaded ones read back (`plan_schedule.replay`)
          + kept gradients read ahead (``gradients``: 3)
          + the cotangents carried between steps, S
          + one step's vector-Jacobian product: the traced gradient's graph
            A_traced, the gradient G (fsdp: P_all gathered + G_all before the
            reduce-scatter + G), the new cotangents S, the pulled-back
            parameter cotangent P and the pull-back's transient working set

Activations, in elements of the run's dtype per token of a rank's batch
(``rows x max_seq_len`` tokens; width d, heads a, seq T, vocabulary V, L
layers)::

    A_fwd       = L (15.4 d + 1.0 a T) + 1.0 V
    A_traced    = L (30.6 d + 3.05 a T) + 3.0 V     (graph of the gradient taken with create_graph)
    transient   = 9.4 d + 4.3 a T + 2.45 V           (one layer's double backward, and the loss's)

The coefficients were fitted (within 3.4 %) to the allocator's live bytes of
magic-core's own training step and backward step on 11 GPT-NeoX shapes
(d 128-512, L 2-8, T 64-256, V 512-8192, fp32; torch's CPU allocator events,
which count what CUDA's ``max_memory_allocated`` counts); the fsdp terms were
checked on 2 gloo ranks. GPT-NeoX's MLP is 4d wide and its attention eager
(``magic_exact``): the d coefficient includes the MLP. On CPU the peaks are
resident memory, so the process's own memory (`CPU_RUNTIME_BYTES`), the
spill buffer and the allocator's overhead (`CPU_RESIDENT_FACTOR`) are added.
"""

from __future__ import annotations

from dataclasses import dataclass

from .plan_model import ModelShape, StateSize
from .plan_schedule import Placement, Replay

A_FWD = (15.4, 1.0, 1.0)  # per layer: x d, x a T; per token: x V
A_TRACED = (30.6, 3.05, 3.0)
TRANSIENT = (9.4, 4.3, 2.45)  # not per layer

# Resident memory of a CPU process before training: torch, transformers, datasets,
# bergson and magic-core imported (0.46 GiB: `baseline_gib` of every workload in
# benchmarks/results/attribution-cpu*.json).
CPU_RUNTIME_BYTES = int(0.46 * 2**30)
# Resident memory over what a CPU run's tensors take: glibc keeps memory freed
# between long-lived tensors (kept states and gradients) instead of returning it.
# Fitted to the 22 phase peaks of benchmarks/results/attribution-cpu{,-small}.json
# (every magic-core workload: each within 13 % with it, up to 20 % under without it).
CPU_RESIDENT_FACTOR = 1.35
# Not in torch.cuda.max_memory_allocated but taken from the GPU's memory: the CUDA
# context and cuBLAS workspaces (an assumption: 1 GiB is typical of an H100 process).
CUDA_CONTEXT_BYTES = 2**30
# Host memory of a GPU rank's process besides kept states (an assumption: torch with
# CUDA, transformers and the datasets resident, 3 GiB).
GPU_PROCESS_HOST_BYTES = 3 * 2**30
# The store copies at most this many states off the device at once (its semaphore).
OFFLOADS_IN_FLIGHT = 2


@dataclass(frozen=True)
class Step:
    """One rank's share of a step: its rows and their length."""

    rows: int
    seq: int
    dtype_bytes: int


def activations(shape: ModelShape, step: Step, coefficients: tuple[float, float, float],
                per_layer: bool = True) -> int:
    width, attention, logits = coefficients
    layer = width * shape.width + attention * shape.heads * step.seq
    per_token = (shape.layers if per_layer else 1) * layer + logits * shape.vocab
    return int(per_token * step.rows * step.seq * step.dtype_bytes)


@dataclass(frozen=True)
class Peak:
    """A phase's peak, in bytes, and what it is made of."""

    bytes: int
    parts: dict[str, int]


def _peak(parts: dict[str, int], cpu: bool) -> Peak:
    parts = {k: int(v) for k, v in parts.items() if v}
    if cpu:
        allocated = sum(v for k, v in parts.items() if k != "runtime")
        parts["allocator overhead"] = int((CPU_RESIDENT_FACTOR - 1) * allocated)
    return Peak(sum(parts.values()), parts)


def training_peak(shape: ModelShape, size: StateSize, step: Step, placed: Placement,
                  schedule: str, *, sharded: bool, exact_update: bool, cpu: bool) -> Peak:
    S, P, G = size.bytes_per_rank, size.parameter_bytes_per_rank, size.gradient_bytes_per_rank
    gathered = size.parameter_bytes if sharded else 0
    forward = activations(shape, step, A_FWD) + gathered
    update = G + S + (0 if exact_update else P)
    offloaded = placed.states["host"] + placed.states["disk"]
    # A copy overlaps the steps after it: only `all`, keeping a state every step, can
    # have two waiting; `gradients` offloads a gradient every step besides.
    waiting = min(OFFLOADS_IN_FLIGHT if schedule == "all" else 1, offloaded) * S
    if placed.gradients["host"] + placed.gradients["disk"]:
        waiting += G
    return _peak({
        "runtime": CPU_RUNTIME_BYTES if cpu else 0,
        "device tier": placed.bytes["device"],
        "state": S,
        "copies in flight": waiting,
        # CPU runs write spilled states through one reused buffer (`state_files.BufferPool`).
        "spill buffer": size.spill_file_bytes_per_rank if cpu and placed.bytes["disk"] else 0,
        "step": max(forward, update),
    }, cpu)


def backward_peak(shape: ModelShape, size: StateSize, step: Step, placed: Placement,
                  replayed: Replay, *, sharded: bool, cpu: bool, weights: int) -> Peak:
    S, P, G = size.bytes_per_rank, size.parameter_bytes_per_rank, size.gradient_bytes_per_rank
    gradient = (size.parameter_bytes + size.gradient_bytes + G) if sharded else G
    vjp = (activations(shape, step, A_TRACED) + gradient + S + P
           + activations(shape, step, TRANSIENT, per_layer=False))
    return _peak({
        "runtime": CPU_RUNTIME_BYTES if cpu else 0,
        "device tier": max(placed.bytes["device"], replayed.tier_bytes["device"]),
        "states held": replayed.states_in_memory * S,
        "gradients read ahead": replayed.gradients_in_memory * G,
        "cotangents": S,
        "data weights": 2 * weights,  # the weights and their gradient
        "step": vjp,
    }, cpu)
