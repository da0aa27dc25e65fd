"""The error of an input a user gave: one photo, landmark file or video that cannot be used.

Its message is one line naming the file and the reason; a tool working
through a folder reports it and goes on with the next input.
"""


class InputError(ValueError):
    """A photo, landmark file or video that cannot be used; the message names the file."""
