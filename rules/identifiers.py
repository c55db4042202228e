"""Identifiers of the registry checked by their own rules."""

from __future__ import annotations

# GB 32100-2015, the unified social credit code (统一社会信用代码): 18 characters from this
# alphabet (no I, O, Z, S, V), the last a check character over the first 17.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check_char(first17: str) -> str:
    total = sum(
        CREDIT_CODE_ALPHABET.index(c) * w for c, w in zip(first17, CREDIT_CODE_WEIGHTS, strict=True)
    )
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Why `code` is not a unified social credit code, or None when it is one."""
    if len(code) != 18:
        return f"a unified social credit code has 18 characters, not {len(code)}"
    wrong = [c for c in code if c not in CREDIT_CODE_ALPHABET]
    if wrong:
        return f"{wrong[0]!r} is not used in unified social credit codes (0-9 and A-Y without I, O, S, V, Z)"
    expected = credit_code_check_char(code[:17])
    if code[17] != expected:
        return f"the check character is {code[17]!r}, the first 17 characters give {expected!r}"
    return None
