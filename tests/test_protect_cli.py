"""lareturns protect on generated data, and its clear refusals."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app

from .conftest import read_export


@pytest.fixture(scope="module")
def school_table(small_clean, tmp_path_factory):
    folder = tmp_path_factory.mktemp("protect")
    pupils = read_export(small_clean, "pupils").filter(pl.col("enrolment_status") != "S")
    pupils.select("school_urn", "sex", "sen_provision").write_csv(folder / "micro.csv")
    schools = pl.read_csv(small_clean / "reference" / "schools.csv", infer_schema=False)
    hierarchy = {"Total": sorted(schools["lad_code"].unique().to_list())}
    for (lad,), group in schools.group_by("lad_code"):
        hierarchy[lad] = sorted(group["urn"].to_list())
    (folder / "schools.json").write_text(json.dumps(hierarchy))
    pupils.group_by("school_urn", "sex").len("n").write_csv(folder / "freq.csv")
    return folder, pupils.height


def run(*args):
    return CliRunner().invoke(app, ["protect", *map(str, args)])


def test_protect_microdata_writes_every_cell_and_passes_its_audit(school_table):
    folder, pupils = school_table
    out = folder / "out.csv"
    result = run(folder / "micro.csv", "--dims", "school_urn,sex,sen_provision", "--hierarchy",
                 f"school_urn={folder / 'schools.json'}", "--out", out)
    assert result.exit_code == 0, result.output
    assert "PASSED: no cell narrower than its protection level" in result.output
    # the release's policy holds dominance and p% for the amounts its publications show: said, not silently dropped
    assert "note: the policy's dominance and p% rules apply to amounts" in " ".join(result.output.split())
    cells = pl.read_csv(out, infer_schema=False)
    assert cells.columns == ["school_urn", "sex", "sen_provision", "value", "status"]
    grand = cells.filter((pl.col("school_urn") == "Total") & (pl.col("sex") == "Total") & (pl.col("sen_provision") == "Total"))
    assert grand["value"].item() == str(pupils) and grand["status"].item() == "published"
    suppressed = cells.filter(pl.col("status").is_in(["primary", "secondary"]))
    assert suppressed.height > 0 and set(suppressed["value"]) == {"c"}
    published = cells.filter(pl.col("status") == "published")["value"].cast(int)
    assert ((published == 0) | (published >= 10)).all()  # the default threshold
    decisions = pl.read_csv(folder / "out.decisions.csv", infer_schema=False)
    assert decisions.filter(pl.col("status") == "primary")["rule"].drop_nulls().len() == cells.filter(pl.col("status") == "primary").height


def test_protect_frequency_table_with_overrides(school_table):
    folder, _ = school_table
    out = folder / "freq_out.csv"
    result = run(folder / "freq.csv", "--dims", "school_urn,sex", "--value", "n", "--threshold", "3",
                 "--protection-level", "20", "--method", "optimal", "--out", out)
    assert result.exit_code == 0, result.output
    cells = pl.read_csv(out, infer_schema=False)
    published = cells.filter(pl.col("status") == "published")["value"].cast(int)
    assert ((published == 0) | (published >= 3)).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dims", "school_urn,colour"], "unknown dimension 'colour'"),
        (["--dims", "school_urn,sex", "--value", "sex"], "must hold non-negative whole counts"),
        (["--dims", "school_urn,sex", "--hierarchy", "school_urn=HIER"], "does not cover code"),
        (["--dims", "school_urn,sex", "--threshold", "0"], "threshold: 0 is outside"),
        (["--dims", "school_urn,sex", "--method", "magic"], "method: 'magic' is not one of fast, optimal"),
        (["--dims", "school_urn,sex", "--hierarchy", "nonsense"], "--hierarchy expects dim=FILE"),
    ],
)
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(school_table, tmp_path, args, message):
    folder, _ = school_table
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"Total": ["only_one_school"]}))
    args = [a.replace("HIER", str(partial)) for a in args]
    result = run(folder / "micro.csv", *args, "--out", tmp_path / "x.csv")
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.csv").exists()


def test_counts_written_with_a_decimal_point_are_read_as_counts(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,n\nx,p,12.0\nx,q,3\ny,p,20\ny,q,15\n")
    result = run(tmp_path / "t.csv", "--dims", "a,b", "--value", "n", "--out", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    cells = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    assert cells.filter((pl.col("a") == "x") & (pl.col("b") == "p")).select("value", "status").row(0) == ("c", "secondary")
    assert cells.filter((pl.col("a") == "Total") & (pl.col("b") == "Total"))["value"].item() == "50"


@pytest.mark.parametrize("rule", ["dominance = { n = 1, k = 85 }", "p_percent = 10"])
def test_a_magnitude_rule_on_a_table_of_counts_is_refused_naming_the_key(tmp_path, rule):
    (tmp_path / "t.csv").write_text("a,b,n\nx,p,12\nx,q,3\ny,p,20\ny,q,15\n")
    (tmp_path / "policy.toml").write_text(rule + "\n")
    result = run(tmp_path / "t.csv", "--dims", "a,b", "--value", "n", "--out", tmp_path / "out.csv", "--policy",
                 tmp_path / "policy.toml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: {rule.split(' ')[0]}: applies to magnitude tables" in " ".join(result.output.split())
    assert not (tmp_path / "out.csv").exists()


FUNDING = """district,provider,funding
D1,p1,9000.25
D1,p2,500
D1,p3,300
D1,p4,199.75
D2,p5,1234.565
D3,p6,5000
D3,p7,4700
D3,p8,300.5
D4,p9,2500.125
D4,p10,2500
D4,p11,2500
D4,p12,2500
"""


def test_a_magnitude_table_gets_dominance_and_p_percent_with_amounts_rounded_not_truncated(tmp_path):
    """Funding by district, providers as contributors: D1 has a dominant provider, D2 a single one, D3 two large
    ones who could each estimate the other within 10% (p%), D4 four alike. The amounts keep their pence."""
    (tmp_path / "funding.csv").write_text(FUNDING)
    (tmp_path / "policy.toml").write_text('threshold = 3\ndominance = { n = 1, k = 80 }\np_percent = 10\nversion = "m"\n')
    result = run(tmp_path / "funding.csv", "--dims", "district", "--value", "funding", "--contributor", "provider",
                 "--policy", tmp_path / "policy.toml", "--out", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    shown = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    assert shown.rows() == [("Total", "31235.19", "published"), ("D1", "c", "primary"), ("D2", "c", "primary"),
                            ("D3", "c", "primary"), ("D4", "10000.13", "published")]  # 10000.125, half away from zero
    decided = pl.read_csv(tmp_path / "out.decisions.csv", infer_schema=False)
    assert dict(decided.select("district", "rule").rows()) == {"Total": None, "D1": "dominance+p_percent",
                                                               "D2": "dominance+p_percent", "D3": "p_percent", "D4": None}
    assert "PASSED" in result.output


@pytest.mark.parametrize(("args", "expected"), [
    (["--contributor", "provider"], "error: --contributor needs --value, the amount each contributor gives"),
    (["--value", "funding", "--contributor", "provider", "--bad"], None),
])
def test_magnitude_options_are_refused_in_one_line(tmp_path, args, expected):
    (tmp_path / "funding.csv").write_text(FUNDING.replace("300.5", "three hundred") if expected is None else FUNDING)
    result = run(tmp_path / "funding.csv", "--dims", "district", "--out", tmp_path / "out.csv",
                 *[a for a in args if a != "--bad"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line == (expected or "error: column 'funding' must hold a non-negative amount in every row")
