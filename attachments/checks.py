"""What a practice record's file may be, judged by its own bytes (never its name or the type a
client declares): JPEG or PNG up to 10 MiB, PDF up to 20 MiB, by magic bytes; an image must
decode, within `MAX_PIXELS`; a PDF must parse with at most `MAX_PDF_PAGES` pages, every stream
inflating to at most `MAX_PDF_STREAM_BYTES` and all pages together to `MAX_PDF_INFLATED_BYTES`
(a zip bomb stops at the limit, it is not inflated).

An image's EXIF, when present and readable, gives the time it was taken and where: those are
compared with the record's (`exif_flags`). EXIF that does not parse is ignored, never an error:
phones write odd EXIF, and a record is not refused for it."""

from __future__ import annotations

import datetime as dt
import io
import math
import warnings
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pypdf
from PIL import ExifTags, Image

MAX_FILE_BYTES = {"image/jpeg": 10 * 1024 * 1024, "image/png": 10 * 1024 * 1024}
MAX_FILE_BYTES["application/pdf"] = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a 50-megapixel photo; the decoder refuses more before allocating
MAX_PDF_PAGES = 200
MAX_PDF_STREAM_BYTES = 20 * 1024 * 1024
MAX_PDF_INFLATED_BYTES = 40 * 1024 * 1024  # all of a document's pages together
MAGIC = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"%PDF-": "application/pdf",
}
EARTH_R = 6_371_008.8


class BadFile(ValueError):
    """The file is refused; the message says why."""


@dataclass(frozen=True)
class Checked:
    type: str
    taken_at: float | None = None  # epoch seconds, from EXIF DateTimeOriginal
    position: tuple[float, float] | None = None  # lon, lat from EXIF GPS


def check_file(data: bytes, *, tz: ZoneInfo) -> Checked:
    """The file's type and EXIF facts; raises `BadFile`. `tz` places an EXIF time written
    without its offset."""
    if not data:
        raise BadFile("the file is empty")
    media = next((t for magic, t in MAGIC.items() if data.startswith(magic)), None)
    if media is None:
        raise BadFile("not a JPEG, PNG or PDF by its first bytes")
    if len(data) > MAX_FILE_BYTES[media]:
        raise BadFile(f"a {media} may have {MAX_FILE_BYTES[media]} bytes, this one {len(data)}")
    if media == "application/pdf":
        _check_pdf(data)
        return Checked(media)
    return _check_image(data, media, tz)


def _check_image(data: bytes, media: str, tz: ZoneInfo) -> Checked:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise BadFile(f"{img.width}x{img.height} is more than {MAX_PIXELS} pixels")
                img.verify()  # the structure and checksums, without decoding all pixels
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # truncated data shows here
                exif = _exif(img)
    except BadFile:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadFile(f"the image is too large: {exc}") from exc
    except MemoryError:
        raise  # the sandbox's limit (attachments.judge), said as such
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on hostile input
        raise BadFile(f"the {media} does not decode: {type(exc).__name__}: {exc}") from exc
    return Checked(media, *_exif_facts(exif, tz))


def _check_pdf(data: bytes) -> None:
    limits: dict[str, Any] = {
        f"{name}_maximum_output_length": MAX_PDF_STREAM_BYTES
        for name in ("zlib", "lzw", "run_length", "jbig2", "brotli", "array_based_stream")
    }
    limits["maximum_declared_stream_length"] = MAX_PDF_STREAM_BYTES
    try:
        with pypdf.apply_configuration(None, **limits):
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            pages = len(reader.pages)
            if pages == 0 or pages > MAX_PDF_PAGES:
                raise BadFile(f"a PDF needs 1..{MAX_PDF_PAGES} pages, this one has {pages}")
            inflated = 0
            for page in reader.pages:  # inflates the content streams, within the limits
                contents = page.get_contents()
                inflated += len(contents.get_data()) if contents is not None else 0
                if inflated > MAX_PDF_INFLATED_BYTES:  # pypdf keeps what it inflated: stop
                    raise BadFile(
                        f"the PDF's pages inflate past {MAX_PDF_INFLATED_BYTES} bytes together"
                    )
    except BadFile:
        raise
    except MemoryError:
        raise
    except pypdf.errors.LimitReachedError as exc:
        raise BadFile(f"the PDF would inflate past the limit: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on hostile input
        raise BadFile(f"the PDF does not parse: {type(exc).__name__}") from exc


def _exif(img: Image.Image) -> dict[str, Any]:
    try:
        exif = img.getexif()
        out: dict[str, Any] = {
            "when": exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal),
            "offset": exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.OffsetTimeOriginal),
            "gps": dict(exif.get_ifd(ExifTags.IFD.GPSInfo)),
        }
    except Exception:  # noqa: BLE001 - garbage EXIF is ignored (see the module's text)
        return {}
    return out


def _exif_facts(
    exif: dict[str, Any], tz: ZoneInfo
) -> tuple[float | None, tuple[float, float] | None]:
    return _exif_time(exif, tz), _exif_position(exif.get("gps") or {})


def _exif_time(exif: dict[str, Any], tz: ZoneInfo) -> float | None:
    when, offset = exif.get("when"), exif.get("offset")
    if not isinstance(when, str):
        return None
    try:
        local = dt.datetime.strptime(when.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        if isinstance(offset, str) and offset.strip("\x00 "):
            return dt.datetime.fromisoformat(f"{local.isoformat()}{offset.strip()}").timestamp()
        return local.replace(tzinfo=tz).timestamp()
    except ValueError:
        return None


def _exif_position(gps: dict[int, Any]) -> tuple[float, float] | None:
    try:
        lat = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef), "S")
        lon = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lon, lat


def _degrees(dms: Any, ref: Any, negative: str) -> float:
    d, m, s = (float(x) for x in dms)
    value = d + m / 60 + s / 3600
    if not math.isfinite(value):
        raise ValueError("not finite")
    return -value if str(ref or "").strip("\x00 ").upper() == negative else value


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lon1, lat1), (lon2, lat2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_R * math.asin(min(1.0, math.sqrt(h)))


def exif_flags(
    checked: Checked,
    sm3: str,
    record_ts: float,
    record_position: tuple[float, float],
    *,
    max_distance_m: float,
    max_time_s: float,
) -> list[str]:
    """What does not fit: `exif_far:{sm3}:{metres}` when the photo was taken more than
    `max_distance_m` from the record's position, `exif_time:{sm3}:{seconds}` more than
    `max_time_s` from its time."""
    flags = []
    if checked.position is not None:
        far = distance_m(checked.position, record_position)
        if far > max_distance_m:
            flags.append(f"exif_far:{sm3}:{round(far)}")
    if checked.taken_at is not None:
        off = abs(checked.taken_at - record_ts)
        if off > max_time_s:
            flags.append(f"exif_time:{sm3}:{round(off)}")
    return flags
