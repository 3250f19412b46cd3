"""Errors meant for users: ``lbp`` prints them as one line (``lbp: error: ...``) and
exits with status 2, without a traceback."""


class LbpError(ValueError):
    """A problem the user can fix; the message names the file, field and value."""


class ConfigError(LbpError):
    """A setting in the config or on the command line is invalid."""
