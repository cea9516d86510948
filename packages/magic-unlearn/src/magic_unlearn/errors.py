"""The exception type magic-unlearn raises for mistakes a user can fix."""

from magic_core import ConfigError


class UnlearnError(ConfigError):
    """A bad unlearning config or input (e.g. scores from another corpus), in one line.

    A `ConfigError`, so anything that already reports those (the driver) reports it too.
    """
