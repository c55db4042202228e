"""Files for the upload tests, made here: photos with and without EXIF, PDFs honest and
hostile, images that lie about their size."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image


def jpeg(
    *,
    lon_lat: tuple[float, float] | None = None,
    taken: str | None = None,
    size: tuple[int, int] = (64, 48),
    colour: tuple[int, int, int] = (200, 100, 50),
) -> bytes:
    """A JPEG; with `lon_lat` (east, north) its EXIF GPS position, with `taken` its
    DateTimeOriginal ("2026:12:06 10:00:00", at +08:00)."""
    exif = Image.Exif()
    if lon_lat is not None:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: _dms(lon_lat[1]),
            ExifTags.GPS.GPSLongitudeRef: "E",
            ExifTags.GPS.GPSLongitude: _dms(lon_lat[0]),
        }
    if taken is not None:
        exif[ExifTags.IFD.Exif] = {
            ExifTags.Base.DateTimeOriginal: taken,
            ExifTags.Base.OffsetTimeOriginal: "+08:00",
        }
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def _dms(value: float) -> tuple[float, float, float]:
    d = int(value)
    m = int((value - d) * 60)
    return float(d), float(m), round((value - d - m / 60) * 3600, 4)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def pdf(
    content: bytes = b"BT /F1 12 Tf 72 720 Td (ok) Tj ET", *, deflate: bool = False, pages: int = 1
) -> bytes:
    """A PDF of `pages` pages sharing one content stream, with a correct cross-reference
    table; the stream deflated when `deflate` (a zip bomb when `content` is large and
    repetitive)."""
    stream = zlib.compress(content, 9) if deflate else content
    filt = b" /Filter /FlateDecode" if deflate else b""
    kids = b" ".join(b"%d 0 R" % (4 + k) for k in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Length %d%s >>\nstream\n" % (len(stream), filt) + stream + b"\nendstream",
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def progressive_jpeg_with_scans(extra_scans: int, size: tuple[int, int] = (3000, 3000)) -> bytes:
    """A valid progressive JPEG whose last scan is repeated `extra_scans` times before its end:
    every repeat is decoded again (a CPU bomb of a few hundred kilobytes)."""
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buf, "JPEG", progressive=True, quality=80)
    data = buf.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    body = data[last_scan:-2]  # the last SOS segment and its entropy-coded data, without EOI
    return data[:-2] + body * extra_scans + b"\xff\xd9"


def png_solid(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()
