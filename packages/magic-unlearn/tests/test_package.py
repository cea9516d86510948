import importlib.metadata

import magic_unlearn


def test_installed_with_its_declared_dependencies():
    requires = importlib.metadata.requires("magic-unlearn")
    assert any(r.startswith("magic-core") for r in requires)
    assert magic_unlearn.__version__ == importlib.metadata.version("magic-unlearn")
