"""magic-driver: the `magic` command combining datasets, core and unlearning."""

__version__ = "0.1.0"
