"""Run a callback right after a given module finishes importing.

Used by the .pth start-up hook: patching must wait until torch's DTensor code
exists, and importing torch eagerly at interpreter start-up would cost every
Python process (including ones that never touch torch) a second or more.
"""

import importlib.abc
import sys


class _Loader(importlib.abc.Loader):
    """Delegates to the real loader, then fires the callback once."""

    def __init__(self, inner, callback):
        self._inner = inner
        self._callback = callback

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        try:
            self._inner.exec_module(module)
        finally:
            # Leave no trace of the wrapper on the module once it is loaded.
            module.__loader__ = self._inner
            if module.__spec__ is not None:
                module.__spec__.loader = self._inner
        self._callback(module)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class PostImportFinder:
    def __init__(self, name, callback):
        self.name = name
        self.callback = callback
        self._busy = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self._busy:
            return None
        self._busy = True  # the lookup below re-enters the meta path
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        self.remove()
        spec.loader = _Loader(spec.loader, self._safe_callback)
        return spec

    def _safe_callback(self, module):
        try:
            self.callback(module)
        except Exception as exc:  # a broken patch must not break the user's import
            import warnings

            warnings.warn(
                f"torch_dtensor_patch: automatic patching failed: {exc!r}",
                RuntimeWarning,
                stacklevel=2,
            )

    def remove(self):
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass


def when_imported(name, callback):
    """Call ``callback(module)`` once ``name`` is imported (now, if it already is)."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return None
    finder = PostImportFinder(name, callback)
    sys.meta_path.insert(0, finder)
    return finder
