"""The built-in world's base model: a tiny GPT-NeoX that knows the world.

The default world's model is shipped with the package (`world_shipped`), so
every machine runs the demo on the very same weights. Other worlds, sizes or
recipes are built here and cached under ``$MAGIC_CACHE`` (default
``~/.cache/magic-unlearn``) in a folder named by the hash of everything that
determines them, so a changed world, model size or recipe trains a new one
and never reuses a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import magic_datasets as md
import torch
from magic_core.evaluation import multiple_choice_accuracy
from magic_core.pretraining import PretrainConfig, train_language_model
from magic_datasets.world import World, WorldConfig, build_tokenizer
from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

from .notices import notice

RECIPE_VERSION = 2  # bump when the training code changes what a config produces


@dataclass(frozen=True)
class BaseModelConfig:
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 128


def cache_root() -> Path:
    return Path(os.environ.get("MAGIC_CACHE", Path.home() / ".cache" / "magic-unlearn"))


def _key(world: WorldConfig, model: BaseModelConfig, train: PretrainConfig) -> str:
    blob = json.dumps(
        {"world": asdict(world), "model": asdict(model), "train": asdict(train),
         "recipe": RECIPE_VERSION, "torch": torch.__version__.split("+")[0]},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Label smoothing keeps the model from being certain of anything, so that
# fine-tuning documents still move its answers measurably.
WORLD_PRETRAINING = PretrainConfig(steps=800, lr=3e-3, warmup_steps=10, label_smoothing=0.2)
# A cold build took 3.5 minutes of wall time on a 2-core machine shared with
# other jobs (the process got 0.8 of a core); told to the user before it starts.
BUILD_MINUTES_2_CORES = 4


def is_default(world: WorldConfig, model: BaseModelConfig, train: PretrainConfig) -> bool:
    """The configuration whose model ships with the package."""
    return (world, model, train) == (WorldConfig(), BaseModelConfig(), WORLD_PRETRAINING)


def world_base_dir(world: WorldConfig = WorldConfig(), model: BaseModelConfig = BaseModelConfig(),
                   train: PretrainConfig = WORLD_PRETRAINING) -> Path:
    """Where the base model of this world, size and recipe is: shipped, or cached once built."""
    if is_default(world, model, train):
        from .world_shipped import SHIPPED_DIR

        return SHIPPED_DIR
    return cache_root() / "world-base" / _key(world, model, train)


def is_built(target: Path) -> bool:
    return (target / "info.json").exists()


def world_base_model(world: WorldConfig = WorldConfig(), model: BaseModelConfig = BaseModelConfig(),
                     train: PretrainConfig = WORLD_PRETRAINING, progress: bool = True) -> Path:
    """Path of a saved model + tokenizer directory (``info.json`` holds its accuracies).

    The default configuration's is the shipped one, verified against its
    recorded sha256; any other is built once and cached.
    """
    if is_default(world, model, train):
        from .world_shipped import verified_shipped_dir

        return verified_shipped_dir()
    target = world_base_dir(world, model, train)
    if is_built(target):
        return target
    # Without this line a first run shows minutes of a bare "Pretraining" bar
    # (or, with --quiet, nothing at all).
    notice(f"building the built-in world's base model, once (cached in {target}); "
           f"about {BUILD_MINUTES_2_CORES} minutes on 2 CPU cores, longer on a busy machine")
    build_world_base(target, world, model, train, progress)
    return target


@contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread: results then do not depend on the machine's core count
    (reductions split over threads sum in another order)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_world_base(world: WorldConfig, model: BaseModelConfig, train: PretrainConfig,
                     progress: bool = True):
    """A freshly trained model, its tokenizer and its info (accuracies by kind of fact)."""
    with one_thread():
        torch.manual_seed(train.seed)
        tokenizer = build_tokenizer(World(world))
        # attn_implementation is a keyword of every config at run time, not in the typed signature.
        net = GPTNeoXForCausalLM(GPTNeoXConfig(  # type: ignore[call-arg]
            vocab_size=len(tokenizer), tie_word_embeddings=False, attn_implementation="eager",
            attention_dropout=0.0, hidden_dropout=0.0, bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **asdict(model),
        ))
        corpus = md.load("world-pretrain", world_seed=world.seed,
                         entities_per_domain=world.entities_per_domain)
        rows = [r + [tokenizer.eos_token_id] for r in
                tokenizer(list(corpus["text"]), add_special_tokens=False)["input_ids"]]
        log = train_language_model(net, rows, train, pad_id=tokenizer.pad_token_id,
                                   progress=progress)
        info = {
            "world": asdict(world), "model": asdict(model), "pretraining": {**asdict(train), **log},
            "parameters": sum(p.numel() for p in net.parameters()),
            "pretraining_documents": len(corpus),
            **accuracies(net, tokenizer, world),
        }
    return net, tokenizer, info


def accuracies(net, tokenizer, world: WorldConfig) -> dict:
    """Hazard (forget) and general (retain) accuracy, and on the facts seen in prose only:
    read in documents, never answered in a quiz (None where a world has none)."""
    options = {"world_seed": world.seed, "entities_per_domain": world.entities_per_domain}
    info: dict = {"prose_only_accuracy_by_domain": {}}
    right, asked = 0.0, 0
    for domain, key in (("hazard", "forget_accuracy"), ("general", "retain_accuracy")):
        questions = md.load(f"world-{domain}-mcqa", **options)
        info[key] = multiple_choice_accuracy(net, tokenizer, questions)
        # This world's prose-only facts are its held-out ones (one hazard fact per
        # pathogen); the general domain has none.
        prose = [q for q in questions if q["held_out"]]
        accuracy = multiple_choice_accuracy(net, tokenizer, prose) if len(prose) else None
        info["prose_only_accuracy_by_domain"][domain] = accuracy
        right, asked = right + (accuracy or 0.0) * len(prose), asked + len(prose)
    info["prose_only_accuracy"] = right / asked if asked else None
    return info


def build_world_base(target: Path, world: WorldConfig = WorldConfig(),
                     model: BaseModelConfig = BaseModelConfig(),
                     train: PretrainConfig = WORLD_PRETRAINING, progress: bool = True) -> dict:
    """Train and save to ``target`` whole or not at all (staged, then renamed); its info."""
    net, tokenizer, info = train_world_base(world, model, train, progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        net.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        os.replace(staging, target)  # atomic: a concurrent builder's copy wins or ours does
    except OSError:
        if not is_built(target):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def load_world_info(path: Path) -> dict:
    return json.loads((Path(path) / "info.json").read_text())


def load_world_base(path: Path, dtype=torch.float32):
    model = GPTNeoXForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, load_world_info(path)
