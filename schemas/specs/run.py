"""Everything a run is configured by, loaded once at its start (schemas.config.load_run_config) and handed to each
task: the recipients, every publication and extract spec, and each disclosure policy a publication is protected
under. A task never reads a config file itself, so one run sees one version of each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from disclosure_control.policy import Policy
    from schemas.specs.extract import Extract
    from schemas.specs.publication import Publication
    from schemas.specs.recipient import Recipient


class RunConfigError(ValueError):
    """A run whose configs cannot be used together; the message names the publications and the policies."""


@dataclass(frozen=True)
class RunConfig:
    recipients: dict[str, Recipient]
    publications: dict[str, Publication]  # by name, in name order
    extracts: dict[str, Extract]
    policies: dict[Path, Policy]  # every policy file a publication may be protected under
    policy_file: Path | None = None  # the run's own, for all its statistics (--policy)
    config_hashes: dict[str, str] | None = None  # each policy and spec file's SHA-256 as loaded, for the ledger

    def publications_of(self, returns: Iterable[str]) -> list[Publication]:
        wanted = set(returns)
        return [p for p in self.publications.values() if p.return_name in wanted]

    def extracts_of(self, return_name: str) -> list[Extract]:
        return [e for e in self.extracts.values() if e.return_name == return_name]

    def policy_file_of(self, publication: Publication) -> Path:
        """The recipient's policy, unless the run names one for all its statistics."""
        return self.policy_file or self.recipients[publication.recipient].policy

    def policy_of(self, publication: Publication) -> Policy:
        return self.policies[self.policy_file_of(publication)]

    def problem_policy(self, publications: Iterable[Publication]) -> Policy:
        """The one policy publications protected together are protected under: the run's, or their recipients'
        (which must agree, since the publications share units)."""
        publications = list(publications)
        files = sorted({self.policy_file_of(p) for p in publications})
        if len(files) > 1:
            raise RunConfigError(f"{' and '.join(p.name for p in publications)} count related units but their "
                                 f"recipients' policies differ ({', '.join(f.name for f in files)}); a release "
                                 "protected as one problem needs one policy")
        return self.policies[files[0]]

    def recipient_policy(self, recipient: str) -> Policy:
        """The recipient's own policy, whose version its manifest records when it receives no statistics."""
        return self.policies[self.recipients[recipient].policy]
