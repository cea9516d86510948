"""Wall time of training and of the backward, from FLOPs and a rate per device kind.

One training step on a rank costs::

    t_train = F / R + L x c + traffic / B

with ``F`` the rank's FLOPs (`plan_model.flops_per_token` x its tokens),
``R`` the FLOP/s the device achieves, ``L`` layers, ``c`` a fixed cost per
layer and step (dispatch, the optimizer's loop over tensors, the store), and
``traffic`` the bytes a rank exchanges per step at ``B`` bytes/s (gradients
all-reduced, data parallel; parameters all-gathered and gradients
reduce-scattered, fsdp). One backward step issues three times a training
step's matrix products (docs/configuration.md, "What one backward step
costs") and twice its traffic::

    t_backward = 3 F / R_b + L x c_b + 2 traffic / B

and the backward adds the training steps its schedule replays (``sqrt``,
``log``) and the updates it applies again (``gradients``), each costing
``u`` per byte of state.

The rates: `CPU` is fitted to `benchmarks/attribution.py`'s measured runs of
the ``cpu`` and ``cpu-small`` presets on the 2-core machine they ran on (two
shapes, two constants per phase: see `fit`); `GPUS` are assumptions from
datasheets until a GPU run calibrates them. The CPU's gloo link rate is
assumed too (2 GB/s: loopback copies).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """How fast one device kind runs a rank's steps."""

    name: str
    flops: float  # R, training
    backward_flops: float  # R_b, for the backward's 3 F
    layer_seconds: float  # c
    backward_layer_seconds: float  # c_b
    update_seconds_per_byte: float  # u
    link_bytes_per_second: float  # B, between the ranks of a node
    source: str
    assumed: bool


# Fitted by `fit` to benchmarks/results/plan-calibration-cpu.json and
# plan-calibration-cpu-small.json (the median of 3 `magic_core` runs of each preset,
# 2 CPU cores, fp32, Adam; `benchmarks/plan_accuracy.py --fit`, and a test checks
# these against the committed results). u: Adam's update by formula took 8.0 ms on a
# 41 MB state on the same machine (docs/configuration.md).
CPU = Rate(
    "cpu", flops=155.9e9, backward_flops=155.4e9, layer_seconds=0.006703,
    backward_layer_seconds=0.015039, update_seconds_per_byte=8.0e-3 / 41_060_352,
    link_bytes_per_second=2e9,
    source="fitted to benchmarks/results/plan-calibration-cpu{,-small}.json (2 cores)",
    assumed=False,
)

def cpu_rate(ranks_per_node: int) -> Rate:
    """`CPU` for one of ``ranks_per_node`` ranks: the rate was measured by one process using
    every core, and ranks on one machine share its cores."""
    if ranks_per_node <= 1:
        return CPU
    from dataclasses import replace

    return replace(CPU, flops=CPU.flops / ranks_per_node,
                   backward_flops=CPU.backward_flops / ranks_per_node,
                   source=f"{CPU.source}, its cores shared by {ranks_per_node} ranks")


# NVIDIA's datasheet peaks (H100 SXM5; GH200 carries the same Hopper GPU): 67 TFLOP/s
# in FP32 on CUDA cores and in FP64 on tensor cores. torch does not use TF32 for fp32
# matrix products unless asked (float32_matmul_precision "highest"), so fp32 runs at
# the FP32 peak. Assumed achieved: 40 % of it (large matrices reach 70-80 % in
# cuBLAS; eager training spends the rest on elementwise work and launches; a plain
# fp32 training of a 70M GPT-NeoX on one H100 reached 21 % in the seed's notes).
GPU_ACHIEVED = 0.4
# Hopper's HBM3 bandwidth (H100 SXM5 3.35 TB/s, GH200 4.0 TB/s, H200 4.8 TB/s), of which
# an update by formula (elementwise: reads state and gradient, writes a state) gets half.
# NVLink between the GPUs of a node: 150 GB/s each way assumed for a 4-GPU GH200 node
# (6 links of 25 GB/s to each peer), 450 GB/s for an 8-GPU H100/H200 node (NVSwitch).
_HOPPER = dict(fp32=67e12, fp64=67e12)
GPUS = {
    "GH200": dict(_HOPPER, memory_bw=4.0e12, link=150e9),
    "H200": dict(_HOPPER, memory_bw=4.8e12, link=450e9),
    "H100": dict(_HOPPER, memory_bw=3.35e12, link=450e9),
    "A100": dict(fp32=19.5e12, fp64=19.5e12, memory_bw=2.0e12, link=300e9),
}
# Per layer and step: about 40 kernel launches forward and backward at ~10 us each,
# doubled for the backward step's double backward, as on the CPU (assumed).
GPU_LAYER_SECONDS = 0.5e-3
# The backward's matrix products run at the CPU fit's R_b / R of the training rate (assumed).
BACKWARD_EFFICIENCY = CPU.backward_flops / CPU.flops


def gpu_rate(name: str, precision: str) -> Rate | None:
    """The assumed rate of GPU ``name`` (matched by its model, e.g. 'NVIDIA GH200 120GB');
    None for a GPU not in `GPUS`."""
    key = next((k for k in GPUS if k.lower() in name.lower()), None)
    if key is None:
        return None
    spec = GPUS[key]
    flops = spec[precision] * GPU_ACHIEVED
    return Rate(
        key, flops=flops, backward_flops=flops * BACKWARD_EFFICIENCY,
        layer_seconds=GPU_LAYER_SECONDS, backward_layer_seconds=2 * GPU_LAYER_SECONDS,
        update_seconds_per_byte=3 / (spec["memory_bw"] / 2), link_bytes_per_second=spec["link"],
        source=f"assumed: {GPU_ACHIEVED:.0%} of NVIDIA's {precision} datasheet peak "
               f"({spec[precision] / 1e12:.0f} TFLOP/s); not yet calibrated by a GPU run",
        assumed=True,
    )


@dataclass(frozen=True)
class Work:
    """What one rank does: per step FLOPs and traffic, the step counts, the state size."""

    flops_per_step: float
    layers: int
    traffic_per_step: float  # bytes a rank sends per training step
    steps: int
    replayed_steps: int
    replayed_updates: int
    state_bytes: int


def train_step_seconds(work: Work, rate: Rate) -> float:
    return (work.flops_per_step / rate.flops + work.layers * rate.layer_seconds
            + work.traffic_per_step / rate.link_bytes_per_second)


def backward_step_seconds(work: Work, rate: Rate) -> float:
    return (3 * work.flops_per_step / rate.backward_flops
            + work.layers * rate.backward_layer_seconds
            + 2 * work.traffic_per_step / rate.link_bytes_per_second)


def estimate(work: Work, rate: Rate) -> dict[str, float]:
    """Seconds of training and of the backward (replays included)."""
    train = train_step_seconds(work, rate)
    backward = (work.steps * backward_step_seconds(work, rate) + work.replayed_steps * train
                + work.replayed_updates * work.state_bytes * rate.update_seconds_per_byte)
    return {"train": work.steps * train, "backward": backward}


def fit(runs: list[tuple[Work, float, float]]) -> dict[str, float]:
    """R, c, R_b and c_b solving two measured runs ``(work, train s, backward s)`` exactly
    (single process, no traffic); how `CPU` was obtained."""
    (w1, t1, b1), (w2, t2, b2) = runs
    u = CPU.update_seconds_per_byte

    def solve(f1, y1, f2, y2):
        # f1 x + L1 c = y1, f2 x + L2 c = y2
        det = f1 * w2.layers - f2 * w1.layers
        x = (y1 * w2.layers - y2 * w1.layers) / det
        return 1 / x, (y1 - f1 * x) / w1.layers

    r, c = solve(w1.flops_per_step, t1 / w1.steps, w2.flops_per_step, t2 / w2.steps)

    def per_step(w: Work, train: float, backward: float) -> float:
        replays = w.replayed_updates * w.state_bytes * u + w.replayed_steps * train / w.steps
        return (backward - replays) / w.steps

    rb, cb = solve(3 * w1.flops_per_step, per_step(w1, t1, b1), 3 * w2.flops_per_step,
                   per_step(w2, t2, b2))
    return {"flops": r, "layer_seconds": c, "backward_flops": rb, "backward_layer_seconds": cb}
