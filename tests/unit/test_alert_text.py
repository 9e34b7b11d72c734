"""Alerts as people read them: e-mail text, chat notification and Security Hub finding, for every alert type,
with names from pushers and deployers rendered inert."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tagwarden.adapters.chat_publisher import chat_notification
from tagwarden.adapters.securityhub_publisher import asff_finding, finding_id
from tagwarden.adapters.sns_publisher import SNS_MESSAGE_LIMIT, structured_message
from tagwarden.domain.alert_text import (
    CommandScope,
    chat_card,
    chat_value,
    email_text,
    look_closer_commands,
    names_ok,
    plain,
)
from tagwarden.domain.alerts import Actor, Alert, AlertType, KubernetesContext, UsageSite

from tests.support.alerts import ACTOR, IN_USE, PUSHED, REGISTRY, SCANNED, sample_alerts

SCHEMA = json.loads((Path(__file__).parents[1] / "support" / "schemas" / "chat_custom_notification.json").read_text())
PRODUCT_ARN = "arn:aws:securityhub:eu-west-1:444455556666:product/444455556666/default"
ALERTS = sample_alerts()
CODE_SPAN = re.compile(r"`[^`]*`")


def test_every_alert_type_has_a_sample() -> None:
    assert set(ALERTS) == set(AlertType)


@pytest.mark.parametrize("alert_type", list(AlertType))
def test_the_email_says_what_happened_where_who_what_to_do_and_how_to_look_closer(alert_type: AlertType) -> None:
    alert = ALERTS[alert_type]

    text = email_text(alert)

    assert alert.summary in text
    assert f"{REGISTRY}/shop/api" in text
    assert alert.runbook in text
    assert alert.alert_id in text
    for digest in filter(None, (alert.previous_digest, alert.current_digest, alert.scanned_digest)):
        assert digest in text
    if alert.kubernetes:
        assert f"cluster prod-eu, namespace shop, {alert.kubernetes.kind} {alert.kubernetes.name}" in text
    for site in alert.in_use:
        assert f"workload {site.workload}" in text
    commands = text.split("Look closer:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert commands and all(line.startswith(("  tagwarden ", "  aws ecr ")) for line in commands)
    if alert.tag:
        assert f"  tagwarden history {REGISTRY}/shop/api:v1.4.2" in commands


def test_a_tag_move_names_who_pushed_or_says_it_is_not_yet_known() -> None:
    moved, overwritten = ALERTS[AlertType.TAG_MOVED_AFTER_SCAN], ALERTS[AlertType.TAG_OVERWRITTEN]

    assert (
        "Who pushed:             ci-deployer/gitlab-runner-42 from 198.51.100.23 "
        "(arn:aws:sts::111122223333:assumed-role/ci-deployer/gitlab-runner-42)"
    ) in email_text(moved)
    # Not enriched later: the alert says where the answer will be.
    scope = CommandScope("tagwarden-prod", "eu-west-1")
    assert (
        "Who pushed:       not yet known; once CloudTrail reports the push, this shows it: "
        f"tagwarden history {REGISTRY}/shop/api:v1.4.2 --stack-name tagwarden-prod --region eu-west-1\n"
    ) in email_text(overwritten, scope=scope)
    assert "Who pushed" not in email_text(ALERTS[AlertType.UNSCANNED_IMAGE_DEPLOYED])  # its deployer is named
    assert "Revert:                 reverted: the tag is back on the previous digest (tag put back on the scanned" in (
        email_text(moved)
    )


def test_a_settings_change_never_says_its_caller_is_unknown() -> None:
    weakened = ALERTS[AlertType.TAG_PROTECTION_WEAKENED]

    assert "Who changed it:   ci-deployer/gitlab-runner-42 from" in email_text(
        weakened.model_copy(update={"actor": ACTOR})
    )
    assert "not yet known" not in email_text(weakened)


def test_a_reverted_tag_shows_it_is_back_and_each_digest_once() -> None:
    text = email_text(ALERTS[AlertType.TAG_MOVED_AFTER_SCAN])

    assert f"Previous digest:        {SCANNED} (the scanned one, scanned 2026-11-30T04:12:07Z)\n" in text
    assert f"Pushed digest (undone): {PUSHED}\n" in text
    assert f"Tag now names:          {SCANNED} again (the previous digest)\n" in text
    assert "Scanned digest" not in text and text.count(SCANNED) == 2


def test_a_mismatch_shows_the_running_and_the_scanned_digest_on_distinct_lines() -> None:
    text = email_text(ALERTS[AlertType.DEPLOYED_DIGEST_MISMATCH])

    assert f"Running digest:   {PUSHED}\n" in text
    assert f"Previous digest:  {SCANNED} (the scanned one, scanned 2026-11-30T04:12:07Z)\n" in text
    assert "Scanned digest" not in text and "Current digest" not in text


def test_a_vulnerable_image_says_how_to_list_its_findings() -> None:
    commands = look_closer_commands(ALERTS[AlertType.VULNERABLE_IMAGE_DEPLOYED])

    assert (
        f"aws ecr describe-image-scan-findings --repository-name shop/api --image-id imageDigest={SCANNED}"
        " --registry-id 111122223333 --region eu-west-1"
    ) in commands


def test_the_commands_name_the_tag_and_the_exact_digest_to_check() -> None:
    text = email_text(ALERTS[AlertType.DEPLOYED_DIGEST_MISMATCH])

    assert f"  tagwarden check {REGISTRY}/shop/api@{PUSHED}\n" in text
    weakened = email_text(ALERTS[AlertType.TAG_PROTECTION_WEAKENED])
    assert (
        "  aws ecr describe-repositories --repository-names shop/api --registry-id 111122223333 --region eu-west-1"
        in weakened
    )


@pytest.mark.parametrize("alert_type", list(AlertType))
def test_the_chat_notification_has_the_documented_shape(alert_type: AlertType) -> None:
    alert = ALERTS[alert_type]

    message = chat_notification(alert)

    jsonschema.validate(message, SCHEMA)
    content = message["content"]
    assert content["title"].startswith(f"{alert.severity} ")
    assert alert.alert_id in content["description"]
    assert content["nextSteps"][0] == chat_value(alert.runbook, 600)
    assert message["metadata"]["threadId"] == alert.alert_id  # a redelivery threads under the first post


@pytest.mark.parametrize("alert_type", list(AlertType))
def test_the_security_hub_finding_has_the_asff_fields_and_limits(alert_type: AlertType) -> None:
    alert = ALERTS[alert_type]

    finding = asff_finding(alert, PRODUCT_ARN)

    assert finding["Id"] == finding_id(PRODUCT_ARN, alert.alert_id)
    assert (finding["ProductArn"], finding["AwsAccountId"], finding["Region"]) == (
        PRODUCT_ARN,
        "444455556666",
        "eu-west-1",
    )
    assert finding["GeneratorId"] == f"tagwarden/{alert.type}"
    assert finding["Severity"] == finding["FindingProviderFields"]["Severity"] == {"Label": alert.severity.value}
    assert len(finding["Title"]) <= 256 and len(finding["Description"]) <= 1024
    assert finding["Remediation"]["Recommendation"]["Text"] == alert.runbook[:512]
    assert finding["ProductFields"]["tagwarden/AlertId"] == alert.alert_id
    assert finding["RecordState"] == "ACTIVE" and "Workflow" not in finding
    image = finding["Resources"][0]
    if alert.type is AlertType.TAG_PROTECTION_WEAKENED:  # a setting of the repository, not an image
        assert image["Type"] == "AwsEcrRepository"
        assert image["Id"] == "arn:aws:ecr:eu-west-1:111122223333:repository/shop/api"
        assert image["Details"]["AwsEcrRepository"]["RepositoryName"] == "shop/api"
    else:
        assert image["Type"] == "AwsEcrContainerImage"
        assert image["Details"]["AwsEcrContainerImage"]["RepositoryName"] == "shop/api"
    types = [resource["Type"] for resource in finding["Resources"]]
    if alert.kubernetes:
        assert types[1:3] == ["AwsEksCluster", "Other"]
        assert finding["Resources"][1]["Id"] == "arn:aws:eks:eu-west-1:444455556666:cluster/prod-eu"
    assert types.count("Other") == (1 if alert.kubernetes else 0) + len(alert.in_use)


def test_the_image_resource_is_the_ecr_image_inspector_also_names() -> None:
    finding = asff_finding(ALERTS[AlertType.TAG_MOVED_AFTER_SCAN], PRODUCT_ARN)

    image = finding["Resources"][0]
    assert image["Id"] == f"arn:aws:ecr:eu-west-1:111122223333:repository/shop/api/{PUSHED}"
    assert image["Details"]["AwsEcrContainerImage"] == {
        "RegistryId": "111122223333",
        "RepositoryName": "shop/api",
        "ImageDigest": PUSHED,
        "ImageTags": ["v1.4.2"],
    }
    assert finding["ProductFields"]["tagwarden/WhoPushed"].startswith("ci-deployer/gitlab-runner-42 from ")


# --- Hostile names --------------------------------------------------------------------------------------

HOSTILE = [
    "@here",
    "@channel hello",
    "<!channel>",
    "<!here|here>",
    "<@U012AB3CD>",
    "<https://evil.example/login|Open the console>",
    "[Open the console](https://evil.example/login)",
    "https://evil.example/x",
    "www.evil.example",
    "**bold** _it_ ~strike~ > quote",
    "`code` ```block```",
    "api\nSeverity: INFO\nWhat to do: nothing",
    "api\r\n\r\n*Alert id:* forged",
    "a\u2028b\u2029c",
    "\u202eexe.gnp",
    "zero\u200bwidth\u200d\ufeff",
    "<b>bold</b><script>alert(1)</script>",
    "&lt;!here&gt;",
    ":rotating_light: :skull:",
    "\x1b[31mred\x1b[0m\x00\x07",
    "x" * 5000,
]


def hostile_alert(base: Alert, name: str) -> Alert:
    """`base` with every outside name replaced by `name` (tags and repositories included: the renderer must
    not rely on the ledger's grammar check)."""
    return base.model_copy(
        update={
            "repository": name,
            "tag": name if base.tag else None,
            "summary": f"Something about {name}.",
            "kubernetes": KubernetesContext(
                cluster=name, namespace=name, kind="Deployment", name=name, user=name, audit_id=name
            )
            if base.kubernetes
            else None,
            "in_use": tuple(
                UsageSite(cluster=name, namespace=name, workload=name, last_seen=s.last_seen) for s in base.in_use
            ),
            "actor": Actor(
                arn=name,
                identity_type=name,
                principal=name,
                account=name,
                source_ip=name,
                user_agent=name,
                trail_event_id=name,
                trail_event_time=None,
            )
            if base.actor
            else None,
            "evidence": (name,),
        }
    )


def assert_inert_text(text: str) -> None:
    for char in text:
        assert unicodedata.category(char) not in {"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"} or char == "\n", repr(char)
    assert "://" not in text.replace("https://docs.aws.amazon.com", "")
    assert not re.search(r"(?i)(?<![a-z0-9])www\.", text)


LABELS = {
    "Image", "Account / region", "Previous digest", "Current digest", "Scanned digest", "Deployed at", "Deployed by",
    "Running digest", "Pushed digest (undone)", "Tag now names",
    "Runs at", "Who pushed", "Who changed it", "Revert", "Event time", "Detected", "What to do", "Look closer",
    "Evidence (source event ids)", "Alert id",
}  # fmt: skip


def labels(text: str) -> list[str]:
    """The e-mail's line structure: each line's label, "indented" or "text" (a line a name could not start).
    A run of indented lines counts once: a name that fails the grammar check gets no command line."""
    structure: list[str] = []
    for line in text.splitlines():
        label = line.split(":", 1)[0]
        kind = label if label in LABELS else "indented" if line.startswith("  ") else "text"
        if not (kind == "indented" and structure[-1:] == ["indented"]):
            structure.append(kind)
    return structure


def without_exact_names(text: str, alert: Alert) -> str:
    """`text` without the commands and the image reference, which are shown exactly when the names pass the
    grammar check (a repository `www.shop/api` must stay copyable); everything else must be inert."""
    for command in look_closer_commands(alert):
        text = text.replace(command, "")
    if names_ok(alert):
        reference = f"{alert.registry}/{alert.repository}"
        text = text.replace(f"{reference}:{alert.tag}", "").replace(reference, "").replace(alert.repository, "")
    return text


def outside_code_spans(text: str) -> str:
    # Adjacent spans count once: a name that fails the grammar check gets no command span.
    return re.sub(r"`…`(?:\s+`…`)+", "`…`", CODE_SPAN.sub("`…`", text))


def check_inert(base: Alert, name: str) -> None:
    alert = hostile_alert(base, name)
    benign = hostile_alert(base, "x")

    # E-mail: the same lines with the same labels as a benign alert; no control characters or links.
    text = email_text(alert)
    assert labels(text) == labels(email_text(benign))
    assert_inert_text(without_exact_names(text, alert))

    # Chat: everything outside code spans is exactly what a benign alert shows; inside, nothing markup acts on.
    for field_of in (lambda c: c.title, lambda c: c.description, lambda c: "\n".join(c.next_steps)):
        hostile_field, benign_field = field_of(chat_card(alert)), field_of(chat_card(benign))
        assert outside_code_spans(hostile_field) == outside_code_spans(benign_field)
        for span in CODE_SPAN.findall(hostile_field):
            inner = span[1:-1]
            assert not set(inner) & set("`<>&\n"), span
            assert not re.search(r"@(?!sha256:)", inner), span
            if inner in look_closer_commands(alert):
                continue  # exact: its names passed the grammar check
            assert not set(inner) & set("[]*_"), span  # Teams formats these where there is no inline code
            assert_inert_text(without_exact_names(inner, alert))
    jsonschema.validate(chat_notification(alert), SCHEMA)

    # Security Hub: plain text within ASFF's limits.
    finding = asff_finding(alert, PRODUCT_ARN)
    for value in (finding["Title"], finding["Description"], *finding["ProductFields"].values()):
        assert_inert_text(without_exact_names(value, alert))
        assert not set(without_exact_names(value, alert)) & set("<>&"), value
    assert len(finding["Title"]) <= 256 and len(finding["Description"]) <= 1024


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("alert_type", list(AlertType))
def test_hostile_names_render_inert(alert_type: AlertType, name: str) -> None:
    check_inert(ALERTS[alert_type], name)


@settings(max_examples=60, deadline=None)
@given(
    alert_type=st.sampled_from(list(AlertType)),
    name=st.text(min_size=1, max_size=300)
    | st.lists(
        st.sampled_from([*HOSTILE, "\n", "`", "<", ">", "@", "&", "|", "\u200b", "\u202e", "https://"]), max_size=8
    )
    .map("".join)
    .filter(bool),
)
def test_any_name_renders_inert(alert_type: AlertType, name: str) -> None:
    check_inert(ALERTS[alert_type], name)


def test_plain_keeps_ordinary_names_exact() -> None:
    for name in ("shop/api", "v1.4.2", "sha256:" + "a" * 64, "system:serviceaccount:argocd:controller", "prod-eu"):
        assert plain(name) == name


# --- Size -----------------------------------------------------------------------------------------------


def test_a_huge_alert_stays_under_the_sns_limit_with_the_json_whole_and_the_text_cut() -> None:
    base = ALERTS[AlertType.VULNERABLE_IMAGE_DEPLOYED]
    site = IN_USE[0]

    # Workloads until the JSON alone (escaped inside the structure) nearly fills the message: the e-mail text
    # (a few KB) no longer fits beside it whole.
    def escaped_size(alert: Alert) -> int:
        return len(json.dumps(alert.to_json(), ensure_ascii=False).encode())

    def with_sites(count: int) -> Alert:
        sites = tuple(site.model_copy(update={"workload": f"deployment/api-{n:05d}"}) for n in range(count))
        return base.model_copy(update={"in_use": sites, "runbook": "ü" * 3_000})

    per_site = escaped_size(with_sites(2)) - escaped_size(with_sites(1))
    huge = with_sites((SNS_MESSAGE_LIMIT - 2_500 - escaped_size(with_sites(0))) // per_site)
    assert SNS_MESSAGE_LIMIT - 2_500 - per_site <= escaped_size(huge) <= SNS_MESSAGE_LIMIT - 2_500
    assert len(email_text(huge).encode()) > 3_000

    body = structured_message(huge)

    assert len(body.encode()) < SNS_MESSAGE_LIMIT
    parsed = json.loads(body)
    assert parsed["default"] == huge.to_json()  # never cut
    assert Alert.model_validate_json(parsed["default"]) == huge
    assert parsed["email"].startswith("Vulnerable image deployed (CRITICAL)")
    assert parsed["email"].endswith("[... cut to fit the message size limit]\n")


def test_an_ordinary_alert_is_sent_whole() -> None:
    alert = ALERTS[AlertType.TAG_MOVED_AFTER_SCAN]

    parsed = json.loads(structured_message(alert))

    assert parsed == {"default": alert.to_json(), "email": email_text(alert), "sms": alert.subject}


def test_the_alerts_scanned_digest_renders_with_its_scan_time() -> None:
    text = email_text(ALERTS[AlertType.VULNERABLE_IMAGE_DEPLOYED])

    # The running digest is the scanned one: one line says both.
    assert f"Current digest:   {SCANNED} (the scanned one, scanned 2026-11-30T04:12:07Z)\n" in text
    assert "ci-deployer" not in text  # no actor on a scan-time finding


# --- Commands, references, subject, findings (red team findings) -----------------------------------------


def test_a_non_ecr_image_gets_advice_instead_of_commands_that_cannot_work() -> None:
    alert = ALERTS[AlertType.UNSCANNED_IMAGE_DEPLOYED].model_copy(
        update={"registry": "docker.io", "repository": "library/nginx", "tag": "1.27", "account": None, "region": None}
    )

    assert look_closer_commands(alert, CommandScope("tagwarden", "eu-west-1")) == ()
    text = email_text(alert)
    assert "  docker.io is not an ECR registry" in text
    assert "tagwarden history" not in text and "tagwarden check" not in text and "aws ecr" not in text
    assert "not an ECR registry" in chat_notification(alert)["content"]["nextSteps"][-1]
    assert "not an ECR registry" in asff_finding(alert, PRODUCT_ARN)["ProductFields"]["tagwarden/LookCloser"]


def test_grammar_checked_references_and_commands_are_never_defanged() -> None:
    alert = ALERTS[AlertType.TAG_MOVED_AFTER_SCAN].model_copy(update={"repository": "www.shop/api", "tag": "www.v2"})
    reference = f"{REGISTRY}/www.shop/api:www.v2"

    text = email_text(alert, scope=CommandScope("tagwarden", "eu-west-1"))

    assert f"Image:                  {reference}\n" in text
    assert f"  tagwarden history {reference} --stack-name tagwarden --region eu-west-1\n" in text
    assert f"`tagwarden history {reference}`" in chat_card(alert).next_steps
    finding = asff_finding(alert, PRODUCT_ARN)
    assert finding["ProductFields"]["tagwarden/LookCloser1"] == f"tagwarden history {reference}"
    assert finding["Title"] == f"Tag moved after its scan: {reference}"


def test_the_commands_name_the_stack_and_the_settings_commands_fit_the_subject() -> None:
    scope = CommandScope("tagwarden-prod", "eu-west-1")
    weakened = ALERTS[AlertType.TAG_PROTECTION_WEAKENED]
    template = weakened.model_copy(
        update={"repository": "ROOT", "summary": "Repository creation template ROOT (applies to ...) now lets ..."}
    )

    assert look_closer_commands(weakened, scope) == (
        "aws ecr describe-repositories --repository-names shop/api --registry-id 111122223333 --region eu-west-1",
        "tagwarden posture --stack-name tagwarden-prod --region eu-west-1",
    )
    assert look_closer_commands(template, scope) == (
        "aws ecr describe-repository-creation-templates --prefixes ROOT --region eu-west-1",
        "tagwarden posture --stack-name tagwarden-prod --region eu-west-1",
    )
    # Another region's settings: posture reads the session's region, which is the stack's: not printed.
    elsewhere = weakened.model_copy(update={"region": "us-east-2"})
    assert [c.split()[1] for c in look_closer_commands(elsewhere, scope)] == ["ecr"]
    # A member account's: posture reads the stack's own account.
    member = CommandScope("tagwarden-prod", "eu-west-1", account="999988887777")
    assert [c.split()[1] for c in look_closer_commands(weakened, member)] == ["ecr"]
    assert look_closer_commands(weakened, CommandScope("tagwarden-prod", "eu-west-1", account="111122223333"))[1:] == (
        "tagwarden posture --stack-name tagwarden-prod --region eu-west-1",
    )
    (resource,) = asff_finding(template, PRODUCT_ARN)["Resources"]
    assert (resource["Type"], resource["Id"]) == (
        "Other",
        "ecr-repository-creation-template/111122223333/eu-west-1/ROOT",
    )


def test_the_subject_is_ascii_under_100_characters_cut_with_dots_and_not_defanged() -> None:
    from tagwarden.domain.alert_text import email_subject

    base = ALERTS[AlertType.TAG_OVERWRITTEN]
    for repository, tag in [("www.a/" + "b" * 80, "www.x"), ("a" * 200, "v1"), ("shop/api", "caf\u00e9\u200b\n")]:
        subject = email_subject(base.model_copy(update={"repository": repository, "tag": tag}))
        assert subject.isascii() and subject.isprintable() and len(subject) < 100, subject
        assert "[.]" not in subject
    assert email_subject(base.model_copy(update={"repository": "a" * 200})).endswith("...")
    assert email_subject(base.model_copy(update={"repository": "www.a/b"})) == "[HIGH] TAG_OVERWRITTEN www.a/b:v1.4.2"


def test_an_organization_clusters_finding_names_the_cluster_in_its_own_account_and_region() -> None:
    alert = ALERTS[AlertType.DEPLOYED_DIGEST_MISMATCH]
    member = alert.model_copy(
        update={"kubernetes": alert.kubernetes.model_copy(update={"cluster": "777788889999:us-west-2:payments"})}  # type: ignore[union-attr]
    )

    cluster = asff_finding(member, PRODUCT_ARN)["Resources"][1]

    assert cluster["Id"] == "arn:aws:eks:us-west-2:777788889999:cluster/payments"
    assert (cluster["Region"], cluster["Details"]["AwsEksCluster"]["Name"]) == ("us-west-2", "payments")


def test_finding_text_swaps_what_markup_acts_on_and_the_email_defangs_bare_domains_and_addresses() -> None:
    alert = ALERTS[AlertType.DEPLOYED_DIGEST_MISMATCH]
    hostile = alert.model_copy(
        update={
            "summary": "see <b>evil.com</b> & mail eve@evil.example",
            "kubernetes": alert.kubernetes.model_copy(update={"user": "eve@evil.example on login.evil.com"}),  # type: ignore[union-attr]
        }
    )

    finding = asff_finding(hostile, PRODUCT_ARN)
    assert not set(finding["Description"]) & set("<>&@"), finding["Description"]
    text = email_text(hostile)
    assert "Deployed by:      eve[@]evil[.]example on login[.]evil[.]com\n" in text
    assert "evil.com" not in text and "eve@" not in text
    # Ordinary names keep their dots: versions, digests, registry hosts in references, user agents' numbers.
    assert plain("v1.4.2 api-7d9f system:serviceaccount:argocd:controller 198.51.100.23") == (
        "v1.4.2 api-7d9f system:serviceaccount:argocd:controller 198.51.100.23"
    )


def test_the_chat_card_shows_a_grammar_checked_image_exactly() -> None:
    alert = ALERTS[AlertType.TAG_OVERWRITTEN]

    card = chat_card(alert)

    assert card.title == f"HIGH Protected tag overwritten: `{REGISTRY}/shop/api:v1.4.2`"
    assert f"*Image:* `{REGISTRY}/shop/api:v1.4.2`" in card.description


def test_chat_values_neutralise_what_teams_formats_inside_code() -> None:
    assert chat_value("[x](y) *b* _i_") == "`\uff3bx\uff3d(y) \u2217b\u2217 \uff3fi\uff3f`"
