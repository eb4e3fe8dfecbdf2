"""One vocabulary for a cell's status, from protect() to the published files and the auditor report (sdcTable's
published / primary / secondary / structural zero), and the EES symbol each hidden status is shown as."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PUBLISHED = "published"  # shown as counted
    PRIMARY = "primary"  # hidden by a rule of the policy
    SECONDARY = "secondary"  # hidden so that no primary can be worked out from the cells shown
    STRUCTURAL_ZERO = "structural_zero"  # a combination that cannot occur
    ROUNDED = "rounded"  # shown, rounded to the policy's base


STATUSES = tuple(Status)
SUPPRESSED = (Status.PRIMARY, Status.SECONDARY)
SHOWN = (Status.PUBLISHED, Status.ROUNDED)
# The key of the policy's [symbols] table each status not shown as a number is written as ("c", "z" by default).
SYMBOL_KEY = {Status.PRIMARY: "suppressed", Status.SECONDARY: "suppressed", Status.STRUCTURAL_ZERO: "not_applicable"}
