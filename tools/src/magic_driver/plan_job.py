"""What `magic plan` reads of a job and of where it would run, before estimating anything.

The job is loaded as `magic attribute` and `magic submit` load it (a job
file or ``preset:NAME``, ``--set`` overrides, one-line refusals); the
processes as `magic submit` starts them: ``slurm.nodes x
slurm.tasks_per_node`` ranks, one GPU each when ``slurm.gpus_per_node`` asks
for GPUs, else on the CPU. The cluster profile gives the GPU model and its
memory and the nodes' host memory; for the ``local`` profile, this machine.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass

from magic_core import ConfigError
from magic_core.keep_schedule import disk_free
from magic_core.memory import available_host_memory, parse_bytes

from .clusters import LOCAL, ClusterProfile
from .jobs import AttributeJob

# `magic_core.state_store.CPU_MEMORY_BUDGET`, whose module imports torch's CUDA side.
CPU_MEMORY_BUDGET = 128 * 2**20


@dataclass(frozen=True)
class Where:
    """The processes of a job and the memory and disks they get."""

    nodes: int
    ranks_per_node: int
    gpu: str | None  # the GPU model; None: the ranks run on CPUs
    gpu_memory: int | None  # bytes of one GPU; None: not known
    node_memory: int | None  # host memory of a node (what auto budgets see); None: not known
    memory_limit: int | None  # what a node's processes may use: slurm.mem, else node_memory
    memory_limit_key: str  # the setting that sets it
    spill_free: int | None  # free bytes where spilled states go; None: not known here
    spill_where: str
    output_free: int | None
    output_where: str

    @property
    def ranks(self) -> int:
        return self.nodes * self.ranks_per_node


def _size(text: str | None, key: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_bytes(text, key)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def slurm_memory(text: str) -> int:
    """``slurm.mem`` in bytes: Slurm reads a bare number and K/M/G/T as powers of 1024 (MB)."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", text)
    assert match, text  # SlurmSection checked it
    number, unit = int(match.group(1)), match.group(2) or "M"
    return number * 1024 ** "KMGT".index(unit) * 1024


def _local_gpu() -> tuple[str, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return props.name, props.total_memory


def where(job: AttributeJob, profile: ClusterProfile, cluster: str) -> Where:
    slurm = job.slurm
    local = cluster == LOCAL
    wants_gpu = job.device != "cpu" and not job.device.startswith("mps")
    gpu, gpu_memory = None, None
    if wants_gpu and slurm.gpus_per_node > 0:
        gpu = profile.gpu or "GPU"
        gpu_memory = _size(profile.gpu_memory, f"cluster profile {cluster!r}: gpu_memory")
        if local and profile.gpu is None and (found := _local_gpu()) is not None:
            gpu, gpu_memory = found
    elif wants_gpu and local and (found := _local_gpu()) is not None:
        gpu, gpu_memory = found  # `magic attribute` here takes this machine's GPU
    node_memory = _size(profile.node_memory, f"cluster profile {cluster!r}: node_memory")
    if node_memory is None and local:
        node_memory = available_host_memory()
    limit, limit_key = node_memory, f"node_memory of cluster profile {cluster!r}"
    if slurm.mem is not None:
        limit, limit_key = slurm_memory(slurm.mem), "slurm.mem"
    spill = job.attribution.spill_dir
    if spill is None and local:
        spill = tempfile.gettempdir()
    return Where(
        nodes=slurm.nodes, ranks_per_node=slurm.tasks_per_node, gpu=gpu, gpu_memory=gpu_memory,
        node_memory=node_memory, memory_limit=limit, memory_limit_key=limit_key,
        spill_free=disk_free(spill) if spill is not None else None,
        spill_where=spill if spill is not None else "the compute nodes' $TMPDIR",
        output_free=disk_free(job.output.dir), output_where=job.output.dir,
    )


def budgets(job: AttributeJob, at: Where) -> dict[str, int]:
    """Each rank's kept-state budgets as the engine resolves them
    (`magic_core.state_store.default_budgets`): half of its share of the node's memory
    (`magic_core.memory.host_memory_share`); host memory counts on GPUs only."""
    device, host = job.attribution.budget("device_memory"), job.attribution.budget("host_memory")
    half = (at.node_memory or 0) // at.ranks_per_node // 2
    if at.gpu is not None:
        return {"device": 0 if device is None else device, "host": half if host is None else host}
    return {"device": min(CPU_MEMORY_BUDGET, half) if device is None else device, "host": 0}


@dataclass(frozen=True)
class Corpus:
    rows: int
    how: str  # where the number comes from
    exact: bool


def corpus_rows(job: AttributeJob) -> Corpus:
    """Token rows of the corpus without loading it: ``data.n_docs``, the loader's ``n`` or
    ``n_docs`` option (or its default), else the size the dataset declares."""
    import magic_datasets as md

    spec = md.get(job.data.dataset)
    options = {**spec.options, **job.data.options}
    chosen = next((options[k] for k in ("n", "n_docs") if options.get(k) is not None), None)
    counts = [(c, w) for c, w in ((job.data.n_docs, "data.n_docs"),
                                  (chosen, f"data.options of {job.data.dataset!r}")) if c]
    exact = job.data.long_documents == "truncate"
    if counts:
        rows, how = min(counts)
        return Corpus(rows, how, exact)
    declared = re.match(r"[\d,]+", spec.size or "")
    if declared is None:
        raise ConfigError(f"cannot tell how many documents {job.data.dataset!r} has without "
                          "loading it; set data.n_docs")
    return Corpus(int(declared.group().replace(",", "")), f"the size {job.data.dataset!r} "
                  "declares (before filtering)", False)


def rows_per_rank(batch_size: int, ranks: int) -> int:
    """Rank 0's rows of a full batch: each rank takes a stride of the batch's rows."""
    return math.ceil(batch_size / ranks)
