"""The one exception type this package raises for mistakes a user can fix."""


class DatasetError(Exception):
    """A user-facing problem with a dataset name, option, plugin or file.

    The message is a single line that names the problem and the fix; the
    driver prints it without a traceback.
    """
