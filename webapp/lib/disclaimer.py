"""The educational-use notice shown on every page, in the API docs and in API payloads.

It is inference's own notice (the command line prints it too), so the project has one text.
"""

from inference import DISCLAIMER

__all__ = ["DISCLAIMER"]
