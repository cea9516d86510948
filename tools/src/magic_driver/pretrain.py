"""A small offline model for any dataset: a tokenizer and a GPT-NeoX trained on its text.

The built-in world's model reads only the world's words, and hub models need
the network. `pretrain` gives a plugin author a model that reads their own
text, saved with ``save_pretrained`` so that a job file names it as
``model: {path: DIR}``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import magic_datasets as md
import torch
from magic_core import ConfigError
from magic_core.pretraining import PretrainConfig, train_language_model
from magic_datasets.mcqa import LETTERS
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from .pretrain_settings import PretrainSettings, check_settings

PAD, EOS = "<|pad|>", "<|endoftext|>"
# Rotary position embeddings have no weights per position: a longer limit
# costs nothing and lets attribution runs use a longer max_seq_len than training.
MAX_POSITIONS = 2048
INFO = "pretrain.json"


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE: any text encodes without an unknown token and decodes exactly."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(LETTERS), special_tokens=[PAD, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, eos_token=EOS,
                                        padding_side="right", model_max_length=MAX_POSITIONS)
    # Multiple-choice scoring reads the answer (" A", " B", ...) as one token
    # after "Answer:"; BPE trained on plain text would split it into space + letter.
    tokenizer.add_tokens([AddedToken(f" {letter}", single_word=True, normalized=False)
                          for letter in LETTERS])
    return tokenizer


def build_model(tokenizer, settings: PretrainSettings) -> GPTNeoXForCausalLM:
    torch.manual_seed(settings.seed)
    # attn_implementation is a keyword of every config at run time, not in the typed signature.
    return GPTNeoXForCausalLM(GPTNeoXConfig(  # type: ignore[call-arg]
        vocab_size=len(tokenizer), hidden_size=settings.width,
        num_hidden_layers=settings.layers, num_attention_heads=settings.heads,
        intermediate_size=4 * settings.width, max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=False, attention_dropout=0.0, hidden_dropout=0.0,
        # Eager attention, as the built-in world's model: attribution differentiates
        # through training a second time, which fused attention kernels may not allow.
        attn_implementation="eager", bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))


def _save(out: Path, model, tokenizer, info: dict) -> None:
    """Write into a hidden sibling and rename it, so ``out`` is whole or absent."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run of this pid
    staging.mkdir()  # not mkdtemp: its mode 0700 would pass to the saved model
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / INFO).write_text(json.dumps(info, indent=2))
        os.rename(staging, out)  # replaces an empty directory, refuses anything else
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pretrain(dataset: str, options: dict, out: Path, settings: PretrainSettings = PretrainSettings(),
             text_column: str = "text", device: str = "cpu", progress: bool = True) -> dict:
    """Train a tokenizer and a model on ``dataset``'s ``text_column``; save both to ``out``.

    Returns what ``out/pretrain.json`` records (data, settings, parameters, final loss).
    """
    out = Path(out)
    check_settings(settings, out)
    if not progress:
        import transformers

        transformers.utils.logging.disable_progress_bar()
    rows = md.load(dataset, **options)
    if text_column not in rows.column_names:
        raise ConfigError(f"dataset {dataset!r} has no column {text_column!r} (it has "
                          f"{rows.column_names}); pass --text-column")
    tokenizer = train_tokenizer(list(rows[text_column]), settings.vocab_size)
    # transformers wraps PreTrainedModel.to in a decorator whose type hides the method's.
    model = build_model(tokenizer, settings).to(device)  # type: ignore[arg-type]
    # Documents longer than seq_len are trained on whole, piece by piece.
    pieces = md.tokenize(rows, tokenizer, settings.seq_len, mode="chunk", text_column=text_column,
                         cache=False)
    log = train_language_model(
        model, [list(r) for r in pieces["input_ids"]],
        PretrainConfig(steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
                       warmup_steps=max(1, settings.steps // 10), seed=settings.seed),
        pad_id=tokenizer.pad_token_id, progress=progress)
    info = {"dataset": dataset, "options": options, "text_column": text_column,
            "documents": len(rows), "token_rows": len(pieces), "vocab_size": len(tokenizer),
            "parameters": sum(p.numel() for p in model.parameters()),
            "settings": asdict(settings), "final_loss": log["final_loss"],
            "seconds": log["seconds"]}
    _save(out, model.cpu(), tokenizer, info)
    return info
