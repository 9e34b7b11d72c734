"""Which registries are judged: every ECR registry, extra registries; never EKS add-on images or exclusions."""

from __future__ import annotations

import pytest
from tagwarden.config import AuditWatcherConfig, ConfigurationError
from tagwarden.domain.images import ImageName, parse_reference
from tagwarden.domain.registry_scope import EKS_ADDON_REGISTRY_HOSTS, Judgement, RegistryScope

OURS = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
ENVIRONMENT = {"LEDGER_TABLE_NAME": "ledger", "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts"}


def name(text: str) -> ImageName:
    return parse_reference(text).name


@pytest.mark.parametrize(
    "image",
    [
        # AWS's documented add-on registries, as nodes name them (the VPC CNI, kube-proxy, CoreDNS).
        "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.2-eksbuild.1",
        "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/kube-proxy:v1.31.3-minimal-eksbuild.2",
        "602401143452.dkr-ecr.us-west-2.on.aws/eks/coredns:v1.11.4-eksbuild.2",
        "066635153087.dkr.ecr.il-central-1.amazonaws.com/eks/coredns:v1.11.4-eksbuild.2",
        "918309763551.dkr.ecr.cn-north-1.amazonaws.com.cn/amazon-k8s-cni:v1.19.2",
        "013241004608.dkr.ecr.us-gov-west-1.amazonaws.com/eks/kube-proxy:v1.31.3",
        "877088126301.dkr.ecr.eusc-de-east-1.amazonaws.eu/eks/coredns:v1.11.4",
        "533267051163.dkr.ecr.ap-east-1.amazonaws.com/eks/coredns:v1.11.4",
        "533267051163.dkr.ecr.ap-east-2.amazonaws.com/eks/coredns:v1.11.4",
    ],
)
def test_eks_addon_images_are_excluded(image: str) -> None:
    assert RegistryScope().judgement(name(image)) is Judgement.EXCLUDED


def test_the_addon_table_lists_one_registry_per_documented_region() -> None:
    # 38 regions of AWS's table, ap-southeast-5 from its China mirror, and the ap-east-2 hostname doubt.
    assert len(EKS_ADDON_REGISTRY_HOSTS) == 40
    # The add-on account in one region is an ordinary customer account elsewhere: only the pair matters.
    assert RegistryScope().judgement(name("602401143452.dkr.ecr.il-central-1.amazonaws.com/x")) is Judgement.JUDGED


def test_the_guardduty_eks_agent_is_excluded_and_its_region_still_judged() -> None:
    agent = "039403964562.dkr.ecr.us-west-2.amazonaws.com/aws-guardduty-agent:v1.11.0-eks-build.2"
    assert RegistryScope().judgement(name(agent)) is Judgement.EXCLUDED
    customer = "444455556666.dkr.ecr.us-west-2.amazonaws.com/aws-guardduty-agent:v1.11.0-eks-build.2"
    assert RegistryScope().judgement(name(customer)) is Judgement.JUDGED


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (f"{OURS}/shop/api:latest", Judgement.JUDGED),
        ("444455556666.dkr.ecr.us-east-1.amazonaws.com/vendor/agent:2", Judgement.JUDGED),
        ("123456789012.dkr.ecr.us-west-2.amazonaws.hacker.com/x:1", Judgement.JUDGED),
        ("nginx:1.27", Judgement.UNMONITORED),
        ("public.ecr.aws/eks-distro/kubernetes/pause:3.9", Judgement.UNMONITORED),
        ("ghcr.io/org/app:v1", Judgement.JUDGED),
        (f"{OURS}/platform/base:1", Judgement.EXCLUDED),
        (f"{OURS}/platform:1", Judgement.EXCLUDED),
        (f"{OURS}/platformer/app:1", Judgement.JUDGED),
        ("222233334444.dkr-ecr.eu-west-1.on.aws/anything:1", Judgement.EXCLUDED),
    ],
)
def test_judgement_of_each_registry(image: str, expected: Judgement) -> None:
    config = AuditWatcherConfig.from_env(
        {
            **ENVIRONMENT,
            "EXTRA_MONITORED_REGISTRIES": "ghcr.io",
            # A whole registry (written in its dual-stack form) and a repository prefix.
            "EXCLUDED_IMAGE_PREFIXES": f"222233334444.dkr.ecr.eu-west-1.amazonaws.com, {OURS.upper()}/platform",
        }
    )
    assert config.registry_scope.judgement(name(image)) is expected


def test_an_observation_is_judged_when_any_of_its_names_is() -> None:
    scope = RegistryScope(excluded_prefixes=frozenset({f"{OURS}/platform"}))
    addon = name("602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni")
    assert scope.judge_any([addon, name(f"{OURS}/shop/api")]) is Judgement.JUDGED
    assert scope.judge_any([addon, name("nginx")]) is Judgement.EXCLUDED
    assert scope.judge_any([name("nginx")]) is Judgement.UNMONITORED


def test_a_delivery_is_judged_once_per_set_of_names_and_each_observation_gets_its_own() -> None:
    """The audit watcher judges each distinct set of names once per delivery: sets that differ never share one."""
    from datetime import UTC, datetime

    from tagwarden.domain.deployments import ImageReferenced, ImageRunning, Observation
    from tagwarden.domain.workloads import Workload
    from tagwarden.services.audit_watcher import _judgements

    scope = RegistryScope(excluded_prefixes=frozenset({f"{OURS}/platform"}))
    where, now = Workload("prod", "shop", "Pod", "api-1"), datetime(2026, 11, 20, tzinfo=UTC)
    digest = "sha256:" + "ab" * 32
    addon = parse_reference(f"602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni@{digest}")
    ours, hub = parse_reference(f"{OURS}/shop/api:1"), parse_reference("nginx:1")
    observations: list[Observation] = [
        ImageReferenced(ours, where, now),
        ImageReferenced(hub, where, now),
        ImageRunning(addon, None, where, now),
        ImageRunning(addon, hub, where, now),
        ImageRunning(addon, ours, where, now),
        ImageReferenced(hub, where, now),
        ImageReferenced(parse_reference(f"{OURS}/platform/base:1"), where, now),
        ImageReferenced(ours, where, now),
    ]
    assert _judgements(scope, observations) == [
        Judgement.JUDGED,
        Judgement.UNMONITORED,
        Judgement.EXCLUDED,
        Judgement.EXCLUDED,
        Judgement.JUDGED,
        Judgement.UNMONITORED,
        Judgement.EXCLUDED,
        Judgement.JUDGED,
    ]
    # Judged alone, each observation gets the same verdict as inside the delivery.
    assert [_judgements(scope, [o])[0] for o in observations] == _judgements(scope, observations)


def test_unmonitored_accounts_are_known_only_when_the_monitored_ones_are() -> None:
    foreign = "444455556666.dkr.ecr.us-east-1.amazonaws.com"
    assert RegistryScope().unmonitored_account(foreign) is None
    scope = AuditWatcherConfig.from_env({**ENVIRONMENT, "MONITORED_ACCOUNTS": "111122223333, 999988887777"})
    assert scope.registry_scope.unmonitored_account(foreign) == "444455556666"
    assert scope.registry_scope.unmonitored_account(OURS) is None
    assert scope.registry_scope.unmonitored_account("ghcr.io") is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MONITORED_ACCOUNTS", "1111-2222-3333"),
        ("EXCLUDED_IMAGE_PREFIXES", "ghcr.io/Org"),
        ("EXCLUDED_IMAGE_PREFIXES", "not a host"),
    ],
)
def test_bad_scope_settings_fail_at_cold_start_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        AuditWatcherConfig.from_env({**ENVIRONMENT, variable: value})
