"""One exception type for problems the user can fix; the CLI prints it in one line."""


class FerMineError(Exception):
    """Bad input or configuration: shown as `Error: <message>` with exit code 2."""
