"""Record-level extracts: field minimisation per recipient, keyed pseudonyms and generalisation."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import polars as pl
import pytest

from pipelines.nodes.deidentify import WeakKey, postcode_district, postcode_sector, pseudonyms
from pipelines.nodes.extract import extract_rows
from pipelines.store.keys import MissingKey, pseudonymisation_key
from schemas.calendar import Term
from schemas.catalog import extract_spec
from schemas.config import load_extract, load_recipients
from schemas.specs.extract import Entitlement, ExtractError, parse_extract

KEY, OTHER_KEY = bytes(range(32)), bytes(range(1, 33))
CHILDREN = pl.DataFrame({
    "upn": ["A123456789012", " a123456789012 ", "B123456789012"],
    "surname": ["Smith", "Smith", "Jones"],
    "date_of_birth": [dt.date(2015, 3, 4), dt.date(2015, 3, 4), dt.date(2014, 11, 30)],
    "postcode": ["LE1 6XN", "le1 6xn", "NG10 2AB"],
    "weight_kg": [20.5, 20.5, 31.0],
})
SPEC = {"title": "t", "return": "health", "recipient": "health", "dataset": "ncmp", "unit": ["surname", "weight_kg", "postcode"],
        "columns": [{"name": "pseudo_id", "source": "upn"}, {"name": "mob", "source": "date_of_birth"},
                    {"name": "district", "source": "postcode"}, {"name": "weight", "source": "weight_kg"}]}
HEALTH = Entitlement(frozenset({"weight_kg"}), frozenset({"upn"}), (("date_of_birth", "month_of_birth"), ("postcode", "postcode_district")), "health")


def test_pseudonyms_are_keyed_hmacs_of_the_normalised_identifier():
    mine = pseudonyms(CHILDREN["upn"], KEY)
    assert mine[0] == mine[1] != mine[2]  # spacing and case do not split one child
    assert mine[0] == hmac.new(KEY, b"A123456789012", hashlib.sha256).hexdigest()
    assert mine[0] != hashlib.sha256(b"A123456789012").hexdigest()  # not a plain hash anyone could recompute
    assert set(pseudonyms(CHILDREN["upn"], OTHER_KEY)).isdisjoint(mine)  # another recipient cannot link
    with pytest.raises(WeakKey, match="at least 32 bytes"):
        pseudonyms(CHILDREN["upn"], b"short")


def test_postcodes_generalise_to_district_and_sector():
    got = CHILDREN.select(postcode_district(pl.col("postcode")).alias("d"), postcode_sector(pl.col("postcode")).alias("s"))
    assert got.rows() == [("LE1", "LE1 6"), ("LE1", "LE1 6"), ("NG10", "NG10 2")]


def test_an_extract_holds_only_what_the_entitlement_allows_in_the_form_it_allows():
    rows = extract_rows(CHILDREN, parse_extract(SPEC, "x"), HEALTH, Term.parse("2026-spring"), KEY)
    assert rows.columns == ["pseudo_id", "mob", "district", "weight"]
    assert rows.rows()[2] == (hmac.new(KEY, b"B123456789012", hashlib.sha256).hexdigest(), "2014-11", "NG10", 31.0)
    with pytest.raises(ExtractError, match="'surname' is not among recipient 'health'"):
        extract_rows(CHILDREN, parse_extract(SPEC | {"columns": [{"name": "s", "source": "surname"}]}, "x"), HEALTH, Term.parse("2026-spring"), KEY)
    with pytest.raises(ExtractError, match="no key"):
        extract_rows(CHILDREN, parse_extract(SPEC, "x"), HEALTH, Term.parse("2026-spring"), None)


def test_a_shipped_extract_asking_for_more_than_its_recipient_may_have_is_refused_at_load(tmp_path):
    greedy = tmp_path / "greedy.toml"
    greedy.write_text(extract_spec("ncmp_pseudonymised").read_text().replace(
        '{ name = "sex", source = "sex" }', '{ name = "sex", source = "sex" },\n  { name = "Surname", source = "surname" }'))
    with pytest.raises(ExtractError, match=r"greedy.toml: columns: 'surname' is not among recipient 'health'"):
        load_extract(greedy, load_recipients())


def test_the_key_comes_from_the_environment_or_a_prefect_secret_never_from_config(prefect_harness, monkeypatch):
    from prefect.blocks.system import Secret

    monkeypatch.setenv("LARETURNS_KEY_AUDITTEST", KEY.hex())
    assert pseudonymisation_key("audittest") == KEY
    monkeypatch.delenv("LARETURNS_KEY_AUDITTEST")
    with pytest.raises(MissingKey, match="LARETURNS_KEY_AUDITTEST"):
        pseudonymisation_key("audittest")
    Secret(value=OTHER_KEY.hex()).save("lareturns-key-audittest", overwrite=True)
    assert pseudonymisation_key("audittest") == OTHER_KEY
