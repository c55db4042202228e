from __future__ import annotations

import pytest

from geofence.codes import city_of, code_covers, code_prefix, level_of, normalise_code, province_of


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("156440305", "440305"),
        ("440305", "440305"),
        (440305, "440305"),
        (156440305, "440305"),
        (" 440305 ", "440305"),
        ("156110000", "110000"),
    ],
)
def test_normalise_ok(raw: str | int, expected: str) -> None:
    assert normalise_code(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "44030",
        "4403050",
        "12345678",
        "157440305",
        "1564403051",
        "44O305",
        "-44030",
        "+440305",
        "440305.0",
        "４４０３０５",
        True,
        -440305,
        44030,
        None,
        4.4e5,
    ],
)
def test_normalise_rejects(raw: object) -> None:
    with pytest.raises(ValueError):
        normalise_code(raw)  # type: ignore[arg-type]


def test_hierarchy_helpers() -> None:
    assert city_of("440305") == "440300"
    assert province_of("440305") == "440000"
    assert city_of("156440305") == "440300"
    assert city_of("440000") == "440000"
    assert code_prefix("320100") == "3201"
    assert code_prefix("000000") == ""


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("440000", "province"),
        ("440300", "city"),
        ("440305", "district"),
        ("441900", "city"),
        ("429004", "district"),
        ("110000", "province"),
    ],
)
def test_level_of(code: str, level: str) -> None:
    assert level_of(code) == level


@pytest.mark.parametrize(
    ("outer", "inner", "covers"),
    [
        ("320000", "320102", True),
        ("320100", "320102", True),
        ("320102", "320102", True),
        ("320000", "320000", True),
        ("320100", "320100", True),
        ("320000", "320100", True),
        ("320102", "320100", False),
        ("320100", "320000", False),
        ("320100", "320200", False),
        ("320000", "330102", False),
        ("320100", "321000", False),
        ("156320000", "156320102", True),
        ("000000", "320102", False),
        ("000000", "000000", False),
        ("320000", "000000", False),
        ("100000", "101000", True),
    ],
)
def test_code_covers(outer: str, inner: str, covers: bool) -> None:
    assert code_covers(outer, inner) is covers


def test_code_covers_rejects_malformed() -> None:
    with pytest.raises(ValueError):
        code_covers("3200", "320102")
    with pytest.raises(ValueError):
        code_covers("320000", "x")
