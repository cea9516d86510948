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

        # world_base_model() trains on the default world with exactly this tokenizer.
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
