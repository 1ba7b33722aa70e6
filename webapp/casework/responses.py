from django.http import FileResponse

from webapp.cases.models import Image


def image_file_response(image: Image) -> FileResponse:
    """The stored file of an image, for the page's view and the API's alike."""
    content_type = "image/jpeg" if image.format == "JPEG" else "image/png"
    response = FileResponse(image.file.open("rb"), content_type=content_type)
    # A patient's image: never kept in a browser's or a proxy's cache.
    response["Cache-Control"] = "no-store"
    return response
