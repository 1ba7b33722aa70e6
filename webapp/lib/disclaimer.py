"""The educational-use notice shown on every page, in the API docs and in case payloads."""

DISCLAIMER = (
    "For education and research, not a medical diagnosis. DermaTriage scores come from a "
    "research model; they must not be used to make clinical decisions."
)
