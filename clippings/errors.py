"""The one bad-input error class: anything a user can fix by changing input or flags.

The CLI turns `BadInput` into a single line on stderr and exit code 2; every other exception is exit 1.
"""


class BadInput(Exception):
    """Input or parameters the user must fix; the message is one line naming what, where and the fix."""
