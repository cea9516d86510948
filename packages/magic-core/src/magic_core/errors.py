"""The exception type magic-core raises for mistakes a user can fix."""


class ConfigError(Exception):
    """A bad configuration or input, explained in one line with its fix.

    The driver prints the message without a traceback and exits with code 2.
    """
