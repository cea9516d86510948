"""Loading the model and tokenizer a job names."""

from __future__ import annotations

from magic_core import ConfigError

BUILTIN_WORLD = "builtin:world-base"


def load_model_and_tokenizer(path: str, tokenizer_path: str | None = None, progress: bool = True):
    """Returns ``(model, tokenizer, info)``; ``info`` describes the built-in base model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info: dict = {}
    if path == BUILTIN_WORLD:
        from .world_base import load_world_base, world_base_model

        return load_world_base(world_base_model(progress=progress))
    try:
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot load model {path!r} ({first}); give a local directory saved with "
            f"save_pretrained, a hub id reachable from this machine, or {BUILTIN_WORLD!r}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked; any id will do
    return model, tokenizer, info
