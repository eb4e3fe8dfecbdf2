"""Published rows: every unit is placed in the area hierarchy or counted as left out, never dropped silently."""

from __future__ import annotations

import polars as pl

from pipelines.transforms.publication import AREA, parse_filters, parse_publication, published_rows

FILTERS = parse_filters({"sex": {"label": "Sex", "codeset": "sex"}})
SPEC = {"title": "t", "return": "school_statistics", "recipient": "publication", "dataset": "pupils", "unit": ["upn"],
        "geography": {"kind": "school", "source": "school_urn"}, "indicator": {"col_name": "headcount", "label": "n"},
        "tables": [{"name": "pupils_by_sex", "filters": ["sex"]}]}
SCHOOLS = pl.DataFrame({"urn": ["100001", "100002"], "lad_code": ["E07000129", "E07000130"]})
POSTCODES = pl.DataFrame({"postcode": ["LE1 6XN"], "lad_code": ["E07000129"]})
PUPILS = pl.DataFrame({"upn": ["A1", "A2", "A3", "A3"], "school_urn": ["100001", "100002", "149999", "149999"],
                       "sex": ["M", "F", None, None]})


def test_a_pupil_at_a_school_outside_the_list_is_left_out_and_counted():
    rows, unplaced = published_rows(PUPILS, parse_publication(SPEC, FILTERS, "t"), 2025, "2026-spring", SCHOOLS, POSTCODES)
    assert rows.select(AREA, "sex").rows() == [("100001", "Male"), ("100002", "Female")]
    assert unplaced == 1  # A3, once: units are counted once


def test_by_district_of_residence_an_unknown_postcode_is_left_out_and_counted():
    spec = SPEC | {"geography": {"kind": "residence", "source": "postcode"}}
    pupils = PUPILS.with_columns(postcode=pl.Series(["le1 6xn", "LE16XN", "ZZ9 9ZZ", "ZZ9 9ZZ"]))
    rows, unplaced = published_rows(pupils, parse_publication(spec, FILTERS, "t"), 2025, "2026-spring", SCHOOLS, POSTCODES)
    assert rows[AREA].to_list() == ["E07000129", "E07000129"] and unplaced == 1
