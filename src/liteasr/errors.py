"""One exception type for user mistakes: the CLI prints it as a single line and exits non-zero."""


class UserError(Exception):
    """Bad input from the user (missing file, wrong option, unsupported model, ...)."""
