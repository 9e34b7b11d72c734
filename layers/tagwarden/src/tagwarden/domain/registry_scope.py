"""Which registries' images Tagwarden judges, and which it leaves alone on purpose.

Every private ECR registry is judged, in any account, plus the operator's extra registries. Two kinds of
images are never reported as unscanned: those of the AWS-owned registries that EKS add-ons and the
GuardDuty EKS agent pull from (nodes pull them, nobody pushes or scans them in the customer's account),
and those the operator excludes by registry or repository prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from tagwarden.domain.images import (
    ImageName,
    canonical_registry,
    ecr_host_parts,
    ecr_registry,
    is_ecr_registry,
    looks_like_ecr,
    validate_registry,
    validate_repository,
)

# The registries of Amazon EKS add-on images (VPC CNI, kube-proxy, CoreDNS, EBS CSI driver...), per
# region, as AWS publishes them: "View Amazon container image registries for Amazon EKS add-ons",
# https://docs.aws.amazon.com/eks/latest/userguide/add-ons-images.html (and its docs.amazonaws.cn mirror
# for ap-southeast-5). The list grows with new regions: EXCLUDED_IMAGE_PREFIXES covers one AWS adds
# before this table does.
EKS_ADDON_REGISTRIES: tuple[tuple[str, str], ...] = (
    ("af-south-1", "877085696533"),
    ("ap-east-1", "800184023465"),
    # AWS's table names this account with the hostname `...dkr.ecr.ap-east-1...` for ap-east-2, most
    # likely a typo: both hosts are listed rather than guess which one nodes use.
    ("ap-east-2", "533267051163"),
    ("ap-east-1", "533267051163"),
    ("ap-southeast-3", "296578399912"),
    ("ap-south-2", "900889452093"),
    ("ap-southeast-4", "491585149902"),
    ("ap-southeast-5", "151610086707"),
    ("ap-southeast-6", "333609536671"),
    ("ap-south-1", "602401143452"),
    ("ap-northeast-3", "602401143452"),
    ("ap-northeast-2", "602401143452"),
    ("ap-southeast-1", "602401143452"),
    ("ap-southeast-2", "602401143452"),
    ("ap-southeast-7", "121268973566"),
    ("ap-northeast-1", "602401143452"),
    ("cn-north-1", "918309763551"),
    ("cn-northwest-1", "961992271922"),
    ("eu-central-1", "602401143452"),
    ("eu-west-1", "602401143452"),
    ("eu-west-2", "602401143452"),
    ("eu-south-1", "590381155156"),
    ("eu-west-3", "602401143452"),
    ("eu-south-2", "455263428931"),
    ("eu-north-1", "602401143452"),
    ("eu-central-2", "900612956339"),
    ("il-central-1", "066635153087"),
    ("mx-central-1", "730335286997"),
    ("me-south-1", "558608220178"),
    ("me-central-1", "759879836304"),
    ("us-east-1", "602401143452"),
    ("us-east-2", "602401143452"),
    ("us-west-1", "602401143452"),
    ("us-west-2", "602401143452"),
    ("ca-central-1", "602401143452"),
    ("ca-west-1", "761377655185"),
    ("sa-east-1", "602401143452"),
    ("us-gov-east-1", "151742754352"),
    ("us-gov-west-1", "013241004608"),
    ("eusc-de-east-1", "877088126301"),
)
# The registries GuardDuty Runtime Monitoring deploys its EKS security agent (`aws-guardduty-agent`) from,
# per region, besides the EKS add-on one above, as the GuardDuty User Guide lists them: "ECR repository for
# EKS agent versions 1.15.0 - 1.8.1 (eks.build.2)",
# https://docs.amazonaws.cn/en_us/guardduty/latest/ug/eks-runtime-agent-ecr-image-uri-v1-8-1-build-2.html
# (also under "Amazon ECR repository hosting GuardDuty agent" on docs.aws.amazon.com). Regions the page
# lists with the add-on registry only (ca-west-1, ap-southeast-5, ...) have no row here. Checked row by row
# (2026-11-30) against a stored copy of that page: its eks.build.2 table and its 1.8.1-eks-build.1 table name
# these same 28 accounts, and the rows of the official pages that could be read (us-west-2 to eu-north-1)
# agree; its add-on column agrees with EKS_ADDON_REGISTRIES.
GUARDDUTY_AGENT_REGISTRIES: tuple[tuple[str, str], ...] = (
    ("us-west-2", "039403964562"),
    ("eu-west-3", "113643092156"),
    ("ap-south-1", "610108029387"),
    ("ap-south-2", "618745550137"),
    ("ca-central-1", "001188825231"),
    ("me-central-1", "601769779514"),
    ("eu-west-2", "109118265657"),
    ("us-west-1", "373421517865"),
    ("us-east-1", "031903291036"),
    ("us-east-2", "591382732059"),
    ("eu-west-1", "673884943994"),
    ("sa-east-1", "941219317354"),
    ("eu-north-1", "366771026645"),
    ("eu-central-1", "409493279830"),
    ("eu-central-2", "718440343717"),
    ("ap-southeast-1", "584580519942"),
    ("ap-southeast-2", "011662287384"),
    ("ap-southeast-3", "617474730032"),
    ("ap-northeast-1", "781592569369"),
    ("ap-northeast-2", "732248494576"),
    ("ap-northeast-3", "810724417379"),
    ("ap-east-1", "790429075973"),
    ("me-south-1", "541829937850"),
    ("eu-south-1", "528450769569"),
    ("eu-south-2", "531047660167"),
    ("af-south-1", "379032919888"),
    ("ap-southeast-4", "750462861327"),
    ("il-central-1", "292660727137"),
)
EKS_ADDON_REGISTRY_HOSTS: frozenset[str] = frozenset(
    ecr_registry(account, region) for region, account in EKS_ADDON_REGISTRIES
)
GUARDDUTY_AGENT_REGISTRY_HOSTS: frozenset[str] = frozenset(
    ecr_registry(account, region) for region, account in GUARDDUTY_AGENT_REGISTRIES
)
# The AWS-owned registries whose images are never judged.
AWS_OWNED_REGISTRY_HOSTS: frozenset[str] = EKS_ADDON_REGISTRY_HOSTS | GUARDDUTY_AGENT_REGISTRY_HOSTS


class Judgement(StrEnum):
    """What the audit watcher does with an image name."""

    JUDGED = "judged"
    # An AWS-owned EKS add-on or GuardDuty agent registry, or an operator's exclusion: counted, never alerted.
    EXCLUDED = "excluded"
    # Another registry (Docker Hub, ghcr.io...) that the operator did not ask to watch.
    UNMONITORED = "unmonitored"


def parse_image_prefix(text: str) -> str:
    """Validate an exclusion: a registry host, or `registry/repository-prefix`; ECR hosts made canonical."""
    registry, _, repository = text.strip().partition("/")
    host = canonical_registry(validate_registry(registry))
    return f"{host}/{validate_repository(repository)}" if repository else host


@dataclass(frozen=True, slots=True)
class RegistryScope:
    """The registries judged, the images excluded, and the accounts whose ECR events reach Tagwarden."""

    extra_registries: frozenset[str] = frozenset()
    # Canonical registry hosts, or `registry/repository-prefix` matched on whole path components.
    excluded_prefixes: frozenset[str] = frozenset()
    # Empty: unknown (no statement about accounts is made).
    monitored_accounts: frozenset[str] = frozenset()

    def judgement(self, name: ImageName) -> Judgement:
        """Whether images of this repository are judged, excluded on purpose, or out of scope."""
        if name.registry in AWS_OWNED_REGISTRY_HOSTS or self._excluded(name):
            return Judgement.EXCLUDED
        # A host that looks like ECR but is written in a form the parser does not know is judged too:
        # silence would hide an ECR image, an UNSCANNED alert naming the odd host does not.
        if is_ecr_registry(name.registry) or looks_like_ecr(name.registry) or name.registry in self.extra_registries:
            return Judgement.JUDGED
        return Judgement.UNMONITORED

    def judge_any(self, names: Iterable[ImageName]) -> Judgement:
        """One verdict for an observation naming several repositories (spec and runtime may differ).

        Judged when any name is judged; else excluded when any name is excluded; else out of scope.
        """
        verdicts = {self.judgement(name) for name in names}
        for verdict in (Judgement.JUDGED, Judgement.EXCLUDED):
            if verdict in verdicts:
                return verdict
        return Judgement.UNMONITORED

    def unmonitored_account(self, registry: str) -> str | None:
        """The account of an ECR registry whose events never reach Tagwarden, if known to be one."""
        account, _ = ecr_host_parts(registry)
        if account is None or not self.monitored_accounts or account in self.monitored_accounts:
            return None
        return account

    def _excluded(self, name: ImageName) -> bool:
        if name.registry in self.excluded_prefixes:
            return True
        path = f"{name.registry}/{name.repository}"
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.excluded_prefixes)
