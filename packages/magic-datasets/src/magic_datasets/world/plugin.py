"""Registers the built-in world's datasets (entry point ``world`` of ``magic.datasets``)."""

from __future__ import annotations

import random

import datasets

from ..errors import DatasetError
from ..hookspecs import hookimpl
from ..spec import DatasetSpec, Kind
from .generator import World, WorldConfig

_WORLD_OPTIONS = {"world_seed": 0, "entities_per_domain": 8}


def _world(world_seed: int, entities_per_domain: int) -> World:
    return World(WorldConfig(seed=world_seed, entities_per_domain=entities_per_domain))


def _with_ids(rows: list[dict], prefix: str) -> datasets.Dataset:
    width = len(str(max(len(rows) - 1, 0)))
    return datasets.Dataset.from_list(
        [{"id": f"{prefix}-{i:0{width}d}", **row} for i, row in enumerate(rows)]
    )


def load_pretrain(world_seed: int = 0, entities_per_domain: int = 8) -> datasets.Dataset:
    world = _world(world_seed, entities_per_domain)
    n = world.config.pretrain_docs_per_entity
    rows = (
        world.documents("hazard", n, "pretrain")
        + world.documents("general", n, "pretrain")
        + world.practice_questions("hazard")
        + world.practice_questions("general")
    )
    random.Random(f"pretrain-order-{world_seed}").shuffle(rows)
    return _with_ids(rows, "world-pretrain")


def load_attribution(
    n_docs: int = 64, k_planted: int = 8, seed: int = 0, world_seed: int = 0,
    entities_per_domain: int = 8,
) -> datasets.Dataset:
    """N fine-tuning documents of which ``k_planted`` state hazard facts.

    The others state general facts; attributing the hazard questions should
    find the planted ones.
    """
    if not 0 < k_planted <= n_docs:
        raise DatasetError(
            f"world-attribution needs 0 < k_planted <= n_docs, got k_planted={k_planted}, "
            f"n_docs={n_docs}"
        )
    world = _world(world_seed, entities_per_domain)
    rng = random.Random(f"attribution-{seed}-{world_seed}")
    # Planted documents are exam-prep material: each ends with the worked
    # question of its pathogen's held-out fact, which pretraining never
    # answered. The others are plain general prose.
    hazard = world.documents(
        "hazard", -(-k_planted // entities_per_domain), f"attr-{seed}", quiz_held_out=True
    )
    general = world.documents(
        "general", -(-(n_docs - k_planted) // entities_per_domain), f"attr-{seed}", 0.0
    )
    rows = [{**r, "planted": True} for r in rng.sample(hazard, k_planted)]
    rows += [{**r, "planted": False} for r in rng.sample(general, n_docs - k_planted)]
    rng.shuffle(rows)
    return _with_ids(rows, "world-attr")


def _domain_corpus(domain: str):
    def load(per_entity: int = 4, seed: int = 0, world_seed: int = 0, entities_per_domain: int = 8):
        world = _world(world_seed, entities_per_domain)
        return _with_ids(world.documents(domain, per_entity, f"{domain}-corpus-{seed}"), f"world-{domain}")

    return load


def _questions(domain: str):
    def load(subset: str = "all", world_seed: int = 0, entities_per_domain: int = 8):
        if subset not in ("all", "held-out"):
            raise DatasetError(f"world-{domain}-mcqa: subset must be 'all' or 'held-out', got {subset!r}")
        rows = _world(world_seed, entities_per_domain).questions(domain)
        if subset == "held-out":
            rows = [r for r in rows if r["held_out"]]
        return _with_ids(rows, f"world-{domain}-q")

    return load


@hookimpl
def magic_datasets_register() -> list[DatasetSpec]:
    corpus_options = {"per_entity": 4, "seed": 0, **_WORLD_OPTIONS}
    return [
        DatasetSpec(
            "world-pretrain", Kind.TRAINING_CORPUS, load_pretrain,
            description="built-in world: documents on every entity plus practice questions; "
            "trains the world's base model",
            options=dict(_WORLD_OPTIONS),
        ),
        DatasetSpec(
            "world-attribution", Kind.TRAINING_CORPUS, load_attribution,
            description="built-in world: N fine-tuning documents, k of them planted hazard documents "
            "(column `planted`)",
            options={"n_docs": 64, "k_planted": 8, "seed": 0, **_WORLD_OPTIONS},
        ),
        DatasetSpec(
            "world-forget-corpus", Kind.TRAINING_CORPUS, _domain_corpus("hazard"),
            description="built-in world: hazard-domain documents (the forget corpus)",
            options=dict(corpus_options),
        ),
        DatasetSpec(
            "world-retain-corpus", Kind.TRAINING_CORPUS, _domain_corpus("general"),
            description="built-in world: general-domain documents (the retain corpus)",
            options=dict(corpus_options),
        ),
        DatasetSpec(
            "world-hazard-mcqa", Kind.MULTIPLE_CHOICE, _questions("hazard"),
            description="built-in world: 4-choice questions on hazard facts (WMDP-like); "
            "subset=held-out: the facts only the attribution corpus's planted documents answer",
            options={"subset": "all", **_WORLD_OPTIONS},
        ),
        DatasetSpec(
            "world-general-mcqa", Kind.MULTIPLE_CHOICE, _questions("general"),
            description="built-in world: 4-choice questions on general facts (MMLU-like)",
            options={"subset": "all", **_WORLD_OPTIONS},
        ),
    ]
