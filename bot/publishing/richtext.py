"""The article body as WeChat keeps it: stored HTML cleaned with nh3 to an allow-list.

What stays is what the WeChat article editor keeps when text is pasted from Word, WPS, 秀米 or
135编辑器: paragraphs and sections, headings, lists, quotes, tables, images, and inline styles for
colour, size, weight, alignment, spacing and borders. Scripts, forms, frames, classes, ids, event
handlers and links to other sites go (WeChat articles link only to other WeChat articles; the text
of a link stays). Pure: no I/O.
"""

from __future__ import annotations

import re

import nh3

TAGS = {
    "p", "br", "span", "section", "div", "strong", "b", "em", "i", "u", "s", "strike", "sub", "sup",
    "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li", "hr", "img", "figure", "figcaption",
    "table", "thead", "tbody", "tr", "th", "td", "colgroup", "col", "pre", "code",
}
STYLED = {"style"}
ATTRIBUTES = {
    **{tag: STYLED for tag in TAGS},
    "img": STYLED | {"src", "alt", "width", "height", "data-src"},
    "td": STYLED | {"colspan", "rowspan", "align", "valign", "width"},
    "th": STYLED | {"colspan", "rowspan", "align", "valign", "width"},
    "col": STYLED | {"span", "width"},
    "table": STYLED | {"width", "border", "cellpadding", "cellspacing"},
    "ol": STYLED | {"start"},
    "*": set(),  # no generic attributes (nh3 keeps lang and title by default)
}
STYLE_PROPERTIES = {
    "color", "background-color", "background", "font-size", "font-weight", "font-style", "font-family",
    "text-align", "text-decoration", "text-indent", "line-height", "letter-spacing", "word-spacing",
    "margin", "margin-top", "margin-bottom", "margin-left", "margin-right",
    "padding", "padding-top", "padding-bottom", "padding-left", "padding-right",
    "border", "border-top", "border-bottom", "border-left", "border-right", "border-radius", "border-color",
    "border-style", "border-width", "border-collapse",
    "width", "max-width", "min-width", "height", "max-height", "display", "box-sizing", "vertical-align",
    "white-space", "overflow", "float", "clear",
}
# Word and WPS paste their own markup (<o:p>, conditional comments, mso-* styles): dropped with their content.
DROPPED_WITH_CONTENT = {"script", "style", "title", "head", "xml", "iframe", "object", "embed", "template", "noscript"}
_EMPTY_PARAGRAPHS = re.compile(r"(<p>(<br>|\s|&nbsp;)*</p>\s*){3,}")
# An image uploaded to govbot is /media/ID (what the console serves and the editor writes); scripts
# may write media:ID, kept as the one spelling here (the URL filter below would drop the unknown scheme).
_MEDIA_SCHEME = re.compile(r"""(<img\b[^>]*?\bsrc\s*=\s*["'])media:(\d+)(["'])""", re.I)


def clean_body(html: str) -> str:
    """The HTML as stored and published: allow-listed tags, attributes and style properties."""
    html = _MEDIA_SCHEME.sub(r"\1/media/\2\3", html or "")
    cleaned = nh3.clean(html, tags=TAGS, clean_content_tags=DROPPED_WITH_CONTENT, attributes=ATTRIBUTES,
                        filter_style_properties=STYLE_PROPERTIES, url_schemes={"http", "https", "data"},
                        link_rel=None, strip_comments=True)
    # Runs of empty paragraphs (a common paste artefact) become one.
    return _EMPTY_PARAGRAPHS.sub("<p><br></p>", cleaned).strip()


def plain_text(html: str) -> str:
    """Visible text of the body, for word counts and the word-by-word diff."""
    text = re.sub(r"<br\s*/?>|</(p|div|section|h[1-6]|li|blockquote|tr)>", "\n", html or "", flags=re.I)
    text = nh3.clean(text, tags=set())
    return re.sub(r"\n\s*\n+", "\n", text.replace("&nbsp;", " ").replace("&amp;", "&")
                  .replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')).strip()
