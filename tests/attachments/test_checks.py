"""What a practice record's file may be (attachments.checks), with files made for the
purpose: honest ones pass with their EXIF facts, hostile ones are refused with a reason."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from attachments import sandbox
from attachments.checks import BadFile, Checked, check_file, distance_m, exif_flags
from tests.attachments.files import (
    jpeg,
    pdf,
    png_claiming,
    png_solid,
    progressive_jpeg_with_scans,
)

TZ = ZoneInfo("Asia/Shanghai")
SITE = (113.95, 22.55)


def test_a_photo_passes_with_its_exif_time_and_position() -> None:
    checked = check_file(jpeg(lon_lat=SITE, taken="2026:12:06 10:00:00"), tz=TZ)
    assert checked.type == "image/jpeg"
    assert checked.taken_at == dt.datetime(2026, 12, 6, 2, 0, tzinfo=dt.UTC).timestamp()
    assert checked.position is not None
    assert distance_m(checked.position, SITE) < 0.5  # DMS to a ten-thousandth of a second


def test_a_photo_taken_5_km_away_or_3_hours_off_is_flagged() -> None:
    """5 km east of the record's position (at 22.55 N a degree of longitude is 102.8 km)."""
    away = (SITE[0] + 5000 / 102_800, SITE[1])
    checked = check_file(jpeg(lon_lat=away, taken="2026:12:06 13:00:00"), tz=TZ)
    record_ts = dt.datetime(2026, 12, 6, 10, 0, tzinfo=TZ).timestamp()
    flags = exif_flags(checked, "ab" * 32, record_ts, SITE, max_distance_m=1000, max_time_s=3600)
    assert [f.split(":")[0] for f in flags] == ["exif_far", "exif_time"]
    assert 4950 <= int(flags[0].split(":")[2]) <= 5050
    assert flags[1].endswith(":10800")
    near = exif_flags(
        check_file(jpeg(lon_lat=SITE), tz=TZ),
        "cd" * 32,
        record_ts,
        SITE,
        max_distance_m=1000,
        max_time_s=3600,
    )
    assert near == []


def test_a_photo_without_exif_or_with_garbage_exif_is_taken_unflagged() -> None:
    plain = check_file(jpeg(), tz=TZ)
    assert (plain.taken_at, plain.position) == (None, None)
    garbage = check_file(jpeg(taken="not a time at all"), tz=TZ)
    assert garbage == Checked("image/jpeg")


def test_a_pdf_passes() -> None:
    assert check_file(pdf(), tz=TZ).type == "application/pdf"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"MZ\x90\x00" + b"\0" * 100, "not a JPEG, PNG or PDF"),
        (b"GIF89a" + b"\0" * 100, "not a JPEG, PNG or PDF"),
        (jpeg()[:200], "does not decode"),
        (png_claiming(10_000, 6_000), "pixels"),
        (png_claiming(100_000, 100_000), "too large"),
        (b"%PDF-1.4\n garbage without objects", "does not parse"),
        (pdf(b"0" * 60_000_000, deflate=True), "inflate past the limit"),
        (pdf(b"0" * 15_000_000, deflate=True, pages=3), "pages inflate past"),
    ],
    ids=[
        "empty",
        "exe",
        "gif",
        "truncated",
        "60-megapixel",
        "10-gigapixel",
        "pdf-garbage",
        "pdf-bomb",
        "pdf-pages-bomb",
    ],
)
def test_a_hostile_file_is_refused_with_its_reason(data: bytes, why: str) -> None:
    with pytest.raises(BadFile, match=why):
        check_file(data, tz=TZ)


def test_a_file_judged_in_the_sandbox_passes_with_its_facts() -> None:
    checked = sandbox.judge(jpeg(lon_lat=SITE, taken="2026:12:06 10:00:00"), "Asia/Shanghai")
    assert checked == check_file(jpeg(lon_lat=SITE, taken="2026:12:06 10:00:00"), tz=TZ)
    with pytest.raises(BadFile, match="not a JPEG, PNG or PDF"):
        sandbox.judge(b"MZ" + b"\0" * 64, "Asia/Shanghai")


def test_a_file_that_takes_longer_than_its_wall_time_is_refused() -> None:
    """1,000 repeated progressive scans of a 3000x3000 JPEG: about 5 s to decode here (1.4 s
    per 300); the sandbox stops it at 1 s."""
    started = time.monotonic()
    with pytest.raises(BadFile, match="not judged within 1 s"):
        sandbox.judge(progressive_jpeg_with_scans(1000), "UTC", wall_s=1.0)
    assert time.monotonic() - started < 4


def test_a_file_that_needs_more_memory_than_its_limit_is_refused() -> None:
    """A 7000x7000 PNG (49 megapixels, within the pixel limit) decodes to 147 MB: over a
    150 MiB limit for the whole judging process."""
    with pytest.raises(BadFile, match="more than 150 MiB|memory or CPU limit"):
        sandbox.judge(png_solid(7000, 7000), "UTC", memory_mib=150)
