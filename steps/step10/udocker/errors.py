"""The errors udocker reports: a one-line message and a documented exit status.

The exit statuses are docker's, so scripts written for `docker run` read ours:
125 when udocker itself fails (a bad option, a missing root filesystem, no
permission), 126 when the command cannot be executed, 127 when it is not found.
Anything else is the command's own exit status.
"""

EXIT_RUNTIME_ERROR = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class UdockerError(Exception):
    """A problem the user can fix: printed as `udocker: <message>`, never as a traceback."""

    def __init__(self, message, exit_code=EXIT_RUNTIME_ERROR):
        super().__init__(message)
        self.exit_code = exit_code
