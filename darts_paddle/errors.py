"""The one exception type for mistakes a user can fix (bad flag, missing file, unknown name).

Scripts catch it and print its message as a single line, without a traceback; anything
else is a bug in darts-paddle and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's input; the message names it and says how to fix it."""
