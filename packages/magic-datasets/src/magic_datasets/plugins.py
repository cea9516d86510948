"""Loading the entry points of one plugin group, setting broken plugins aside.

Every registry of the project (datasets, recipes, objectives, optimizers) finds its
third-party plugins the same way: one entry-point group, each entry point imported on
its own so that a plugin that fails to import is named and warned about once while the
others still load. This module is that one loop; it lives here because magic-datasets
is the package every other one already depends on.
"""

from __future__ import annotations

import importlib.metadata
import warnings

Loaded = list[tuple[str, str, object]]


def load_entry_points(group: str, kind: str) -> tuple[Loaded, dict[str, str]]:
    """Import every entry point of ``group``.

    Returns ``(loaded, broken)``: ``loaded`` holds ``(entry point name, distribution
    name, loaded object)`` for each entry point that imported, in discovery order;
    ``broken`` maps the distribution of each one that did not to ``"ExcType: message"``.
    ``kind`` names the plugins in the warning ("dataset" gives "its datasets are
    unavailable").
    """
    loaded: Loaded = []
    broken: dict[str, str] = {}
    # looked up through the module so that tests can substitute the entry points
    for ep in importlib.metadata.entry_points(group=group):
        package = ep.dist.name if ep.dist is not None else ep.value
        try:
            obj = ep.load()
        except Exception as exc:  # one broken plugin must not take the others down
            reason = f"{type(exc).__name__}: {exc}"
            broken[package] = reason
            warnings.warn(
                f"{kind} plugin {ep.name!r} from package {package!r} failed to import "
                f"({reason}); its {kind}s are unavailable",
                stacklevel=3,
            )
            continue
        loaded.append((ep.name, package, obj))
    return loaded, broken
