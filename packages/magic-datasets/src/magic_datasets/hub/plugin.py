"""Registers the hub datasets (entry point ``hub`` of ``magic.datasets``)."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..spec import DatasetSpec, Kind
from . import benchmarks as bm
from . import corpora as co
from .selection import SELECTION_HELP

_LOCAL = "set data_dir / $MAGIC_DATA_DIR to a folder laid out like the hub repo to load offline"
_FILTER = "texts of over min_chars (100) stripped characters; then " + SELECTION_HELP
_TEXT_COLUMNS = {"id": "string (dataset-row index in the split)", "text": "string"}
_MC_COLUMNS = {
    "id": "string", "question": "string", "choices": "list[string]", "answer": "int64 (index)",
}


def _corpus(name, source, description, size, license, extra_columns=None, **kw) -> DatasetSpec:
    return DatasetSpec(
        name, Kind.TRAINING_CORPUS, kw.pop("loader", None) or co.corpus_loader(name, source),
        description=f"{description}; {_LOCAL}", source=source.describe(), license=license,
        gated=source.gated, options=kw.pop("options", dict(co.CORPUS_OPTIONS)),
        columns={**_TEXT_COLUMNS, **(extra_columns or {})}, size=size,
        text=kw.pop("text", "the `text` column"), selection=_FILTER,
        access=(f"gated: request access at {source.access_url}, then `huggingface-cli login` "
                "or set HF_TOKEN") if source.gated else "public",
    )


@hookimpl
def magic_datasets_register() -> list[DatasetSpec]:
    wmdp_robust = f"{bm.WMDP_BIO_ROBUST_ID} ({len(bm.WMDP_BIO_ROBUST_CONFIGS)} configs) [robust]"
    return [
        _corpus("wikitext-103", co.WIKITEXT, "WikiText-103 Wikipedia articles, one line per row",
                "1,801,350 rows", "CC BY-SA 3.0 / GFDL"),
        _corpus("wmdp-bio-forget", co.BIO_FORGET,
                "WMDP bio forget corpus: PubMed papers on hazardous biology",
                "24,453 documents", "gated: do not redistribute beyond your collaborators",
                extra_columns={"title": "string", "abstract": "string", "doi": "string"}),
        _corpus("wmdp-bio-retain", co.BIO_RETAIN, "WMDP bio retain corpus: general biology papers",
                "60,887 documents", "MIT"),
        _corpus("ultrachat-200k", co.ULTRACHAT, "UltraChat 200k SFT conversations",
                "207,865 conversations", "MIT",
                extra_columns={"prompt": "string", "prompt_id": "string",
                               "messages": "list[{content: string, role: string}]"},
                loader=co.corpus_loader("ultrachat-200k", co.ULTRACHAT, ("messages",),
                                        co.ultrachat_text),
                options={**co.CORPUS_OPTIONS, **co.CHAT_OPTIONS},
                text="text_format 'joined' (default, the seed's): message contents joined by "
                "newlines, no roles; 'chat-template': the chat template of option tokenizer"),
        _corpus("wmdp-lie-o-deep-fried", co.LIE_O,
                "WMDP bio documents rewritten with false ('deep-fried') facts", "",
                "see the hub dataset card"),
        DatasetSpec(
            "wmdp-bio-robust", Kind.MULTIPLE_CHOICE, bm.load_wmdp_bio_robust,
            description="WMDP-bio questions that resist shortcut answering (Deep Ignorance), "
            f"the robust split of 6 topic configs (column `subset`); {_LOCAL}",
            source=wmdp_robust, license="see the hub dataset card",
            options={"configs": None, **bm.MC_OPTIONS},
            columns={**_MC_COLUMNS, "subset": "string (topic config)"}, size="868 questions",
            text="multiple-choice prompt (magic_datasets.mcqa)",
            selection=f"configs (None: all of {', '.join(bm.WMDP_BIO_ROBUST_CONFIGS)}); n rows by select 'first' or 'random' (seed)",
            access="public",
        ),
        DatasetSpec(
            "mmlu", Kind.MULTIPLE_CHOICE, bm.load_mmlu,
            description=f"MMLU, all 57 subjects, test split; {_LOCAL}",
            source=bm.MMLU.describe(), license="MIT",
            options={"subjects": None, **bm.MC_OPTIONS},
            columns={**_MC_COLUMNS, "subject": "string"}, size="14,042 questions",
            text="multiple-choice prompt (magic_datasets.mcqa)",
            selection="subjects (None: all); n rows by select 'first' or 'random' (seed)",
            access="public",
        ),
    ]
