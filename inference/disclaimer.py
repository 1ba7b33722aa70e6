"""The project's one disclaimer, for pages, API payloads, the command line, model cards and reports.

It lives here, below the web app and the training code, because both use it and neither may
import the other (training never imports Django).
"""

DISCLAIMER = (
    "For education and research only, not a medical diagnosis. DermaTriage is not a medical "
    "device; a qualified clinician must assess every lesion."
)
