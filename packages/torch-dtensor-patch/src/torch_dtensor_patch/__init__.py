"""Twice-differentiable DTensor redistribution for torch 2.9-2.15.

Attributes resolve lazily so that importing this package (which the .pth
start-up hook does in every interpreter) never imports torch.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "apply": "._patching",
    "unpatch": "._patching",
    "status": "._detect",
    "ComponentStatus": "._detect",
    "COMPONENTS": "._components",
    "DTensorUnavailable": "._components",
    "verify": "._verify",
    "VerifyResult": "._verify",
    "CheckResult": "._verify",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
