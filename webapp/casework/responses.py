from django.http import FileResponse

from webapp.cases.models import Image
from webapp.scoring.models import Prediction

# How long a browser may reuse a thumbnail without asking again.
THUMBNAIL_MAX_AGE_SECONDS = 24 * 3600


def image_file_response(image: Image) -> FileResponse:
    """The stored file of an image, for the page's view and the API's alike."""
    content_type = "image/jpeg" if image.format == "JPEG" else "image/png"
    return _private_file_response(FileResponse(image.file.open("rb"), content_type=content_type))


def heatmap_file_response(prediction: Prediction) -> FileResponse:
    """The stored heatmap overlay (a PNG) of a score, for the page's view and the API's alike."""
    return _private_file_response(
        FileResponse(prediction.heatmap.open("rb"), content_type="image/png")
    )


def _private_file_response(response: FileResponse) -> FileResponse:
    # A patient's image, or a map drawn from one: never kept in a browser's or a proxy's cache.
    response["Cache-Control"] = "no-store"
    return response


def thumbnail_file_response(image: Image) -> FileResponse:
    """An image's thumbnail (a JPEG), for the pages' grids and pickers."""
    response = FileResponse(image.thumbnail.open("rb"), content_type="image/jpeg")
    # Shown on every visit to a case, and never changed once made, so the browser may keep it
    # for a while; private, so no shared cache ever holds a patient's image.
    response["Cache-Control"] = f"private, max-age={THUMBNAIL_MAX_AGE_SECONDS}, immutable"
    return response
