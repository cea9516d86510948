"""The built-in synthetic world: a seeded hazard domain and general domain."""

from .generator import Fact, World, WorldConfig
from .tokenizer import build_tokenizer

__all__ = ["Fact", "World", "WorldConfig", "build_tokenizer"]
