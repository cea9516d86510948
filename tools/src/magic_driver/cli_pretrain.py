"""`magic pretrain`: an offline model that reads a dataset's text (logic in pretrain.py)."""

from __future__ import annotations

from pathlib import Path

import click

from .pretrain_settings import PretrainSettings

DEFAULTS = PretrainSettings()


@click.command()
@click.argument("dataset")
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the model and tokenizer (must not exist yet).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A loader option of the dataset, e.g. --option n=8 (repeatable).")
@click.option("--text-column", default="text", show_default=True,
              help="The column whose text the model learns.")
@click.option("--vocab-size", type=click.IntRange(min=1), default=DEFAULTS.vocab_size,
              show_default=True, help="Most tokens in the byte-level BPE vocabulary.")
@click.option("--steps", type=click.IntRange(min=1), default=DEFAULTS.steps,
              show_default=True, help=f"Training steps (batches of {DEFAULTS.batch_size} token rows).")
@click.option("--layers", type=click.IntRange(min=1), default=DEFAULTS.layers,
              show_default=True, help="Transformer layers.")
@click.option("--width", type=click.IntRange(min=1), default=DEFAULTS.width,
              show_default=True, help="Hidden size (a multiple of --heads).")
@click.option("--heads", type=click.IntRange(min=1), default=DEFAULTS.heads,
              show_default=True, help="Attention heads.")
@click.option("--seq-len", type=click.IntRange(min=2), default=DEFAULTS.seq_len,
              show_default=True, help="Tokens per training row; longer documents are cut into pieces.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seeds the initial weights and the batches.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 or auto.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pretrain(dataset: str, out_dir: Path, options: tuple[str, ...], text_column: str,
             vocab_size: int, steps: int, layers: int, width: int, heads: int, seq_len: int,
             seed: int, device: str, quiet: bool):
    """Train a small model (byte-level BPE tokenizer + GPT-NeoX) on a dataset's text.

    For trying a dataset plugin end to end without the Hugging Face hub: the
    tokenizer reads any text (no unknown tokens), and OUT, saved with
    save_pretrained, is used in a job file as model: {path: OUT}. The
    defaults train a 2-layer, width-64 model in seconds on a laptop CPU.

    \b
    Example:
      magic pretrain example-kitchen-notes --out models/kitchen
      magic pretrain wikitext-103 --option n=2000 --steps 1000 --width 128 --out models/wiki
    """
    # Here, not at the top: `magic --help` imports this module, and dataset_info
    # loads the datasets library (~1 s).
    from .dataset_info import parse_options
    from .pretrain import pretrain as run_pretrain
    from .run_attribute import resolve_device

    settings = PretrainSettings(vocab_size=vocab_size, layers=layers, width=width, heads=heads,
                                seq_len=seq_len, steps=steps, seed=seed)
    info = run_pretrain(dataset, parse_options(options), out_dir, settings,
                        text_column=text_column, device=str(resolve_device(device)),
                        progress=not quiet)
    click.echo(f"wrote {out_dir} ({info['parameters']:,} parameters, vocabulary of "
               f"{info['vocab_size']}, {info['token_rows']} token rows, final loss "
               f"{info['final_loss']:.3f}, {info['seconds']:.1f} s); use it as "
               f"model: {{path: {out_dir}}}")
