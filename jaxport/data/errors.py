"""The one exception type of the data layer."""


class DataError(ValueError):
    """Bad input data. The message is ONE line naming the file (or flag) and the fault."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
