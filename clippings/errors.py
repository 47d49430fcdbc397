"""The error classes a user sees as one line: bad input (exit 2) and a failure already explained (exit 1).

The CLI turns `BadInput` into a single line on stderr and exit code 2, `RunFailed` into a single line and exit
code 1; every other exception is exit 1 with its traceback.
"""


class BadInput(Exception):
    """Input or parameters the user must fix; the message is one line naming what, where and the fix."""


class RunFailed(Exception):
    """A failure that is not the input's fault and that retrying within the run did not get past (e.g. a
    search shard whose actor kept dying); the message is one line naming what failed, how often it was
    tried and what to do. Its cause (the chained exception) goes to the stage's log file, not the console."""
