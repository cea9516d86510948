"""Entry point of the .pth file: arm the lazy hook unless disabled.

Kept free of torch imports: it runs in every Python process of the
environment, and torchrun/srun workers pick it up without code changes.
"""

from ._env import enabled, from_local_enabled

TARGET = "torch.distributed.tensor"


def _patch(_module):
    from ._patching import apply

    apply(from_local=from_local_enabled())


def arm():
    if not enabled():
        return None
    from ._import_hook import when_imported

    return when_imported(TARGET, _patch)


arm()
