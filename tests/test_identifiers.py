"""Identifier rules against the worked examples in data-standards.md (section 1 and appendix A)."""

import polars as pl
import pytest

from schemas.identifiers import (
    check_values,
    is_valid_nass,
    is_valid_nino,
    is_valid_postcode,
    is_valid_uln,
    is_valid_upn,
    upn_check_letter,
)

UPN_CASES = {
    "B801200005001": True,  # python-stdnum's published example
    "A801200005001": False,
    "X80120000A001": False,
    "C855200124001": True,
    "R855200124002": True,
    "Z855400124137": True,
    "N85520012400A": True,  # temporary, final letter A = 0
    "Q85520012401B": True,  # temporary, final letter B = 1
    "A855200124001": False,  # wrong check letter (should be C)
    "I855200124001": False,  # I is never a check letter
    "R8552O0124002": False,  # letter O in the numeric part
    "Z85540012413": False,  # 12 characters
    "N85520012400S": False,  # S not allowed as final letter
    "X000200124001": True,  # checksum-valid; LA 000 fails the separate DfE 1530 rule
}


@pytest.mark.parametrize(("upn", "valid"), UPN_CASES.items())
def test_upn_worked_examples(upn, valid):
    assert check_values(is_valid_upn, [upn]) == [valid]


def test_vendor_example_is_wrong_and_we_say_so():
    """Arbor and Juniper print B207000016049 -> Q207000016049; the weighted sum is 266, 266 mod 23 = 13 = P."""
    letter = pl.select(upn_check_letter(pl.lit("207000016049"))).item()
    assert letter == "P"
    assert check_values(is_valid_upn, ["Q207000016049", "B207000016049", "P207000016049"]) == [False, False, True]


def test_upn_missing_is_invalid():
    assert check_values(is_valid_upn, [None, ""]) == [False, False]


@pytest.mark.parametrize(
    ("uln", "valid"),
    [("1234567899", True), ("5555555554", True), ("9999999998", True), ("1000000000", True),
     ("1234567890", False), ("0234567899", False), ("123456789", False)],
)
def test_uln_worked_examples(uln, valid):
    assert check_values(is_valid_uln, [uln]) == [valid]


def test_uln_stem_without_check_digit_rejects_every_tenth_digit():
    """Stem 987654321 has a weighted sum divisible by 11, so no ULN starts with it."""
    assert not any(check_values(is_valid_uln, [f"987654321{d}" for d in range(10)]))


@pytest.mark.parametrize(
    ("nino", "valid"),
    [("QQ123456A", False), ("AB123456C", True), ("BG123456A", False), ("DA123456A", False),
     ("AO123456A", False), ("AB123456E", False), ("TN123456A", False)],
)
def test_nino_worked_examples(nino, valid):
    assert check_values(is_valid_nino, [nino]) == [valid]


@pytest.mark.parametrize(
    ("nass", "valid"),
    [("0101123456", True), ("1212987654", True), ("0612345678", True), ("12011234567", True),
     ("0013123456", False), ("1313123456", False), ("12AB123456", False), ("12-0112345", False),
     ("12345678", False), ("12011234567890", False)],
)
def test_nass_examples(nass, valid):
    assert check_values(is_valid_nass, [nass]) == [valid]


@pytest.mark.parametrize(
    ("postcode", "valid"),
    [("LE3 8RA", True), ("LE1 7RH", True), ("EC1A 1BB", True), ("W1A 1HQ", True), ("M1 1AA", True),
     ("GIR 0AA", True), ("QE1 1AA", False), ("LE3 8RC", False), ("LE38RA", False), ("LE3 8R", False)],
)
def test_postcode_examples(postcode, valid):
    assert check_values(is_valid_postcode, [postcode]) == [valid]
