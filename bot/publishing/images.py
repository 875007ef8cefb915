"""Images inside a post's body: <img src="/media/ID"> (uploaded to govbot), sent with the post.

WeChat keeps only images it hosts, so the connector uploads each one (media/uploadimg) and rewrites its
src; external images are refused by the checks before sign-off.
"""

from __future__ import annotations

import re

from sqlmodel import Session

from bot.connectors.base import Cover
from bot.models import Media

# The one spelling of a stored body (bot.publishing.richtext.clean_body turns media:ID into it).
MEDIA_SRC = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["'](/media/(\d+))["']""", re.I)


def body_images(session: Session, body: str) -> dict[str, Cover]:
    """The images a body refers to as "/media/<id>" (uploaded to govbot), by their src."""
    images: dict[str, Cover] = {}
    for src, ref in set(MEDIA_SRC.findall(body)):
        media = session.get(Media, int(ref))
        if media is not None:
            images[src] = Cover(filename=media.filename, data=media.data, mime=media.mime)
    return images
