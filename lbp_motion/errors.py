"""Errors meant for users: ``lbp`` prints them as one line (``lbp: error: ...``) and
exits with status 2, without a traceback."""


class LbpError(ValueError):
    """A problem the user can fix; the message names the file, field and value."""


class ConfigError(LbpError):
    """A setting in the config or on the command line is invalid."""


def user_error(err: BaseException | None) -> LbpError | None:
    """The :class:`LbpError` behind ``err``, if any (jsonargparse wraps errors raised
    while it instantiates classes)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, LbpError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
