import importlib.util
from pathlib import Path

import pytest


def _load_hub_fixtures():
    # --import-mode=importlib keeps tests/ off sys.path, so load the helper by file.
    path = Path(__file__).with_name("hub_fixtures.py")
    spec = importlib.util.spec_from_file_location("magic_datasets_hub_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HUB_FIXTURES = _load_hub_fixtures()


@pytest.fixture(scope="session")
def hubfiles():
    """Writers of tiny local copies of the hub datasets (see hub_fixtures.py)."""
    return HUB_FIXTURES
