"""Datasets loaded from the Hugging Face hub (or a local copy laid out like it)."""

from .selection import SELECTIONS, keep_longer_than, select_rows
from .source import DATA_DIR_ENV, HubSource, load_source

__all__ = ["DATA_DIR_ENV", "SELECTIONS", "HubSource", "keep_longer_than", "load_source",
           "select_rows"]
