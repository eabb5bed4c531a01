"""The one exception type that carries a message meant for the user."""


class DlsuiteError(Exception):
    """A problem the user can fix: the message says what is wrong and what to do.

    The CLI prints it as a single line and exits with status 2; library callers
    get an ordinary exception (a ``ValueError`` subclass would hide it among
    programming errors, so this stands on its own).
    """
