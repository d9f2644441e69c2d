"""The catalogue fields an image file carries itself: title, creator, year, keywords and
rights from its embedded XMP, IPTC-IIM or EXIF metadata.

Where the three disagree, XMP wins, then IPTC, then EXIF, as the Metadata Working Group
advises: XMP is the newest and carries Unicode and several languages, IPTC-IIM is what
older archive software wrote, and EXIF is mostly what the camera wrote. Only the header
is read (Pillow opens lazily), never the pixels. XMP needs defusedxml, which also refuses
entity-expansion bombs; without it XMP is left out and the other two are still read.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, IptcImagePlugin

log = logging.getLogger(__name__)

# EXIF tags (TIFF/EXIF 2.3 and the Windows XP* tags, UTF-16LE bytes).
EXIF_DATETIME = 0x0132
EXIF_ARTIST = 0x013B
EXIF_COPYRIGHT = 0x8298
EXIF_IFD = 0x8769
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_XP_TITLE = 0x9C9B
EXIF_XP_AUTHOR = 0x9C9D
EXIF_XP_KEYWORDS = 0x9C9E

# IPTC-IIM application records (2:nn).
IPTC_OBJECT_NAME = (2, 5)
IPTC_KEYWORDS = (2, 25)
IPTC_DATE_CREATED = (2, 55)
IPTC_BYLINE = (2, 80)
IPTC_COPYRIGHT = (2, 116)

# XMP dates, most specific first: when the work was made, then when the file was.
XMP_DATES = ("DateCreated", "DateTimeOriginal", "CreateDate")

FIELDS = ("title", "creator", "year", "tags", "rights")
_YEAR = re.compile(r"^\s*(-?\d{4})")


def embedded_metadata(path: Path) -> dict[str, Any]:
    """The catalogue fields found in the file (any of FIELDS); {} when there are none or
    the file cannot be read as an image (ingest reports that one when it fetches it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on odd but harmless headers
            with Image.open(path) as image:
                layers = [_from_xmp(image), _from_iptc(image), _from_exif(image)]
    except Exception as exc:  # a damaged header must not stop a backfill of thousands
        log.debug("no metadata read", extra={"path": str(path), "error": repr(exc)})
        return {}
    found: dict[str, Any] = {}
    for layer in layers:
        for name, value in layer.items():
            if value not in (None, "", []) and name not in found:
                found[name] = value
    return found


def _from_xmp(image: Image.Image) -> dict[str, Any]:
    try:
        import defusedxml  # noqa: F401  (Pillow needs it for getxmp)
    except ImportError:
        return {}
    try:
        tree = image.getxmp()
    except Exception:  # malformed or hostile XML: ignore the XMP, keep the rest
        return {}
    found: dict[str, Any] = {}
    for description in _descriptions(tree):  # several rdf:Description blocks may share it
        dates = (_year(_text(description.get(name))) for name in XMP_DATES)
        candidates = {
            "title": _text(description.get("title")),
            "creator": "; ".join(_texts(description.get("creator"))),
            "tags": _texts(description.get("subject")),
            "rights": _text(description.get("rights")),
            "year": next((year for year in dates if year), None),
        }
        for name, value in candidates.items():
            if value not in (None, "", []) and name not in found:
                found[name] = value
    return found


def _descriptions(tree: dict[str, Any]) -> list[dict[str, Any]]:
    rdf = tree.get("xmpmeta", tree).get("RDF", {})
    found = rdf.get("Description", []) if isinstance(rdf, dict) else []
    items = found if isinstance(found, list) else [found]
    return [item for item in items if isinstance(item, dict)]


def _texts(value: Any) -> list[str]:
    """The strings of an XMP value: a plain text, an rdf:Alt/Seq/Bag of li, or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        for container in ("Alt", "Seq", "Bag"):
            if container in value:
                return _texts(value[container].get("li") if value[container] else None)
        if "li" in value:
            return _texts(value["li"])
        if "text" in value:
            return _texts(value["text"])
    return []


def _text(value: Any) -> str | None:
    """The first (x-default first, for a language alternative) string of an XMP value."""
    if isinstance(value, dict) and "Alt" in value and isinstance(value["Alt"], dict):
        items = value["Alt"].get("li")
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict) and item.get("lang") == "x-default":
                return _text(item.get("text"))
    texts = _texts(value)
    return texts[0] if texts else None


def _from_iptc(image: Image.Image) -> dict[str, Any]:
    try:
        info = IptcImagePlugin.getiptcinfo(image)  # type: ignore[arg-type]
    except Exception:
        return {}
    if not info:
        return {}

    def values(key: tuple[int, int]) -> list[str]:
        raw = info.get(key)
        items = raw if isinstance(raw, list) else [raw] if raw is not None else []
        texts = (_decode(item) for item in items)
        return [text for text in texts if text]

    def first(key: tuple[int, int]) -> str | None:
        found = values(key)
        return found[0] if found else None

    return {
        "title": first(IPTC_OBJECT_NAME),
        "creator": "; ".join(values(IPTC_BYLINE)) or None,
        "year": _year(first(IPTC_DATE_CREATED)),
        "tags": values(IPTC_KEYWORDS),
        "rights": first(IPTC_COPYRIGHT),
    }


def _from_exif(image: Image.Image) -> dict[str, Any]:
    try:
        exif = image.getexif()
        details = exif.get_ifd(EXIF_IFD)
    except Exception:
        return {}
    keywords = _decode(exif.get(EXIF_XP_KEYWORDS))
    return {
        "title": _decode(exif.get(EXIF_XP_TITLE)),
        "creator": _exif_text(exif.get(EXIF_ARTIST)) or _decode(exif.get(EXIF_XP_AUTHOR)),
        "year": _year(_decode(details.get(EXIF_DATETIME_ORIGINAL)))
        or _year(_decode(exif.get(EXIF_DATETIME))),
        "tags": [k.strip() for k in keywords.split(";") if k.strip()] if keywords else [],
        "rights": _exif_text(exif.get(EXIF_COPYRIGHT)),
    }


def _exif_text(value: Any) -> str | None:
    """An EXIF text tag: ASCII by the standard, UTF-8 as most software writes it today,
    which Pillow hands over decoded as Latin-1."""
    text = _decode(value)
    if text is None:
        return None
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text  # real Latin-1 (or already right)


def _decode(value: Any) -> str | None:
    """Text from a metadata value: the Windows XP* tags are UTF-16LE bytes, IPTC bytes are
    UTF-8 in files written this century and Latin-1 in older ones."""
    if value is None:
        return None
    if isinstance(value, tuple):  # XP* tags as a tuple of byte values in some files
        value = bytes(value)
    if isinstance(value, bytes):
        if len(value) >= 2 and value[1:2] == b"\0":
            text = value.decode("utf-16-le", "replace")
        else:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = value.decode("latin-1")
    else:
        text = str(value)
    text = text.replace("\0", "").strip()
    return text or None


def _year(value: str | None) -> int | None:
    """The year of an EXIF ("1941:11:01 16:00:00"), IPTC ("19410411") or XMP
    ("1941-11-01T16:00") date."""
    if not value:
        return None
    match = _YEAR.match(value)
    year = int(match.group(1)) if match else 0
    return year or None  # cameras without a clock write 0000:00:00
