"""The file names of a run directory, in a module light enough for `magic status` (no torch)."""

SCORES = "scores.safetensors"
DOCUMENTS = "documents.parquet"
SOURCES = "sources.parquet"
TRAINING_ORDER = "training_order.parquet"  # which documents each training step saw
MANIFEST = "manifest.json"
# manifest key: file name -> sha256 of the files the manifest describes.
DIGESTS = "digests"
