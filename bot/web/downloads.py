"""A file for the user to save (a Word document, a CSV table), named in Chinese: one way for the console and the API."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import Response

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CSV = "text/csv; charset=utf-8"


def attachment(data: bytes | str, filename: str, media_type: str) -> Response:
    """`data` as a download called `filename` (RFC 5987, so Chinese names survive every browser)."""
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})
