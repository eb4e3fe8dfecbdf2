"""Dataset-level checks with Great Expectations 1.x, compiled from the same contracts, and offline Data Docs.

Three traps handled here (see docs in the issue notes):
- GX cannot validate DuckDB tables, so it runs on pandas frames made from the staged polars frame via Arrow,
  holding only the columns the suite needs (direct identifiers only as uniqueness keys, never names or
  addresses).
- GX stores and renders failing sample values unless told not to: RESULT_FORMAT keeps counts only.
- GX's HTML pulls CSS, JS, fonts and a logo from CDNs: the site gets local copies of the pinned releases
  (pipelines/assurance/docs_assets.py), so it opens offline, looks as GX made it, and asks nothing of the internet.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl

from pipelines.assurance.docs_assets import offline_site
from schemas.contract import Contract
from schemas.rules import Period, allowed_codes
from schemas.specs.docs_assets import DocsAssets

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# great_expectations is imported inside the functions that use it: importing it takes 4-6 s, which every
# other lareturns command (generate, protect) should not pay.

RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}
SITE = "lareturns"


def unique_keys(contract: Contract) -> list[str]:
    return [k for r in contract.rules if r.check == "unique" and "pair_column" not in r.params for k in r.params["columns"]]


def share_column(column: str, value: str) -> str:
    return f"share__{column}__{value}"


def suite_frame(contract: Contract, staged: pl.DataFrame) -> pl.DataFrame:
    """Only the columns the suite looks at, plus 0/1 indicators for the expected shares. Direct identifiers
    go in only as keys of a uniqueness check; their presence is the row rules' job."""
    wanted = [c.name for c in contract.columns if c.identifier != "direct"] + unique_keys(contract)
    indicators = [
        ((pl.col(s["column"]) == s["value"]) if staged.schema[s["column"]] != pl.Boolean
         else (pl.col(s["column"]) == (s["value"] == "Y"))).cast(pl.Float64).alias(share_column(s["column"], s["value"]))
        for s in contract.expectations.get("shares", [])
    ]
    keep = [c for c in dict.fromkeys(wanted) if c in staged.columns]
    return staged.select(*keep, *indicators)


def expectation_list(contract: Contract, previous_rows: int | None, period: Period) -> list:
    import great_expectations.expectations as gxe

    change = contract.expectations.get("row_count_change_max")
    if previous_rows and change is not None:
        low, high = int(previous_rows * (1 - change)), int(previous_rows * (1 + change)) + 1
    else:
        low, high = 1, None
    out = [gxe.ExpectTableRowCountToBeBetween(min_value=low, max_value=high)]
    for c in (c for c in contract.columns if c.identifier != "direct"):
        if c.required:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=c.name))
        elif c.null_rate_max is not None:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=c.name, mostly=1 - c.null_rate_max))
        if c.type == "code":
            out.append(gxe.ExpectColumnValuesToBeInSet(column=c.name, value_set=allowed_codes(c, period)))
        if c.type in ("int", "decimal") and (c.min is not None or c.max is not None):
            out.append(gxe.ExpectColumnValuesToBeBetween(column=c.name, min_value=c.min, max_value=c.max))
    for rule in contract.rules:
        if rule.check == "unique" and "pair_column" not in rule.params:
            keys = rule.params["columns"]
            out.append(gxe.ExpectColumnValuesToBeUnique(column=keys[0]) if len(keys) == 1 else
                       gxe.ExpectCompoundColumnsToBeUnique(column_list=keys, ignore_row_if="any_value_is_missing"))
    for share in contract.expectations.get("shares", []):
        out.append(gxe.ExpectColumnMeanToBeBetween(column=share_column(share["column"], share["value"]),
                                                   min_value=share["min"], max_value=share["max"]))
    return out


def _context(docs: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (DataContextConfig, InMemoryStoreBackendDefaults,
                                                            ProgressBarsConfig)

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def outcome(validation_result) -> dict:
    """Counts per expectation: no sample values exist in the result to begin with."""
    rows = []
    for r in validation_result.results:
        kwargs, result = r.expectation_config.kwargs, r.result or {}
        rows.append({
            "expectation": r.expectation_config.type,
            "column": kwargs.get("column") or kwargs.get("column_list"),
            "success": bool(r.success),
            **{k: getattr(result[k], "item", lambda k=k: result[k])() for k in
               ("element_count", "unexpected_count", "unexpected_percent", "observed_value") if k in result},
        })
    return {"success": bool(validation_result.success), "expectations": rows}


def named_asset(context, result, dataset: str) -> None:
    """GX's page header takes the data asset's name from the batch spec, where a dataframe batch has none ("Data
    asset: None"): the stored result is given the dataset's name before the site is built from it."""
    result.meta["batch_spec"] = {**result.meta.get("batch_spec", {}), "data_asset_name": dataset}
    store = context.validation_results_store
    store.set(next(k for k in store.list_keys() if k.expectation_suite_identifier.name == dataset), result)


def build_data_docs(inputs: list[tuple[Contract, pl.DataFrame, int | None]], docs: Path, run_id: str, period: Period,
                    assets: DocsAssets) -> dict[str, dict]:
    """Run each dataset's suite on its staged rows and write one offline Data Docs site into docs, built once
    after every suite has run (a checkpoint's docs action per dataset would rebuild every page each time)."""
    if not inputs:
        return {}
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = _context(docs)
    source = context.data_sources.add_pandas("staged")
    run = RunIdentifier(run_name=run_id, run_time=dt.datetime.now(dt.UTC))
    outcomes = {}
    for contract, staged, previous in inputs:
        batch = source.add_dataframe_asset(contract.dataset).add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add(gx.ExpectationSuite(name=contract.dataset, expectations=expectation_list(contract, previous, period)))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=f"{contract.dataset}-{run_id}", data=batch, suite=suite))
        result = definition.run(batch_parameters={"dataframe": suite_frame(contract, staged).to_pandas()},
                                result_format=RESULT_FORMAT, run_id=run)
        named_asset(context, result, contract.dataset)
        outcomes[contract.dataset] = outcome(result)
    context.build_data_docs(site_names=[SITE])
    offline_site(docs, assets)
    return outcomes
