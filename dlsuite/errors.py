"""The exception types that carry a message meant for the user."""


class DlsuiteError(Exception):
    """A problem the user can fix: the message says what is wrong and what to do.

    The CLI prints it as a single line and exits with status 2; library callers
    get an ordinary exception. Most problems (a config value, a missing file, an
    unreachable hub) are not a ``ValueError``; bad arguments to the scikit-learn
    estimators are, as :class:`InvalidInputError`.
    """


class InvalidInputError(DlsuiteError, ValueError):
    """Data or parameters passed to an estimator that it cannot use.

    A ``ValueError`` as well, as scikit-learn's estimator contract requires, so code
    written against scikit-learn estimators catches it where it catches theirs.
    """
