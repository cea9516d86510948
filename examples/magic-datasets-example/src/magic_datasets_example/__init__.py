"""An example dataset plugin for magic-datasets (see plugin.py)."""
