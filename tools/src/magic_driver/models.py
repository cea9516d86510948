"""Loading the model and tokenizer a job names."""

from __future__ import annotations

from magic_core import ConfigError

BUILTIN_WORLD = "builtin:world-base"


def _cannot_load(what: str, path: str, exc: Exception) -> ConfigError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(
        f"cannot load {what} {path!r} ({first}); give a local directory saved with "
        f"save_pretrained (e.g. from `magic pretrain`), a hub id reachable from this "
        f"machine, or {BUILTIN_WORLD!r}"
    )


def load_tokenizer(path: str, tokenizer_path: str | None = None):
    """The job's tokenizer alone: cheap, so that text it cannot read is refused before
    a model is loaded (or the built-in base model is trained)."""
    if path == BUILTIN_WORLD:
        from magic_datasets.world import World, WorldConfig, build_tokenizer

        # The shipped world_base_model() was trained on the default world with exactly this tokenizer.
        return build_tokenizer(World(WorldConfig()))
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or path)
    except (OSError, ValueError) as exc:
        raise _cannot_load("tokenizer", tokenizer_path or path, exc) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked; any id will do
    return tokenizer


def load_model_and_tokenizer(path: str, tokenizer_path: str | None = None, progress: bool = True):
    """Returns ``(model, tokenizer, info)``; ``info`` describes the built-in base model."""
    if path == BUILTIN_WORLD:
        from .world_base import load_world_base, world_base_model

        return load_world_base(world_base_model(progress=progress))
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise _cannot_load("model", path, exc) from None
    return model, load_tokenizer(path, tokenizer_path), {}


def max_positions(path: str) -> int | None:
    """How many token positions the model at ``path`` reads, from its config alone (no
    weights, no base-model build); None where that is not known here."""
    if path == BUILTIN_WORLD:
        from .world_shipped import SHIPPED_DIR

        path = str(SHIPPED_DIR)  # its config.json, without verifying or loading weights
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return None  # the model load that follows says why, in its own words
    return getattr(config, "max_position_embeddings", None)


def check_max_seq_len(path: str, max_seq_len: int, key: str) -> None:
    """Refuse token rows longer than the model has positions for: the run would fail
    (or silently misbehave) only once training reaches a long row."""
    limit = max_positions(path)
    if limit is not None and max_seq_len > limit:
        raise ConfigError(f"{key}={max_seq_len} but model {path!r} reads at most {limit} tokens "
                          f"(max_position_embeddings); set {key} to {limit} or less")


def fitted_max_seq_len(path: str, max_seq_len: int | None, key: str, default: int) -> int:
    """``max_seq_len`` checked against the model; left out (None): ``default``, or the
    model's positions where it has fewer."""
    if max_seq_len is None:
        limit = max_positions(path)
        return default if limit is None else min(default, limit)
    check_max_seq_len(path, max_seq_len, key)
    return max_seq_len
