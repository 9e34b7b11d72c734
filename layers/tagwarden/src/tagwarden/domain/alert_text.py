"""Alerts as people read them: an e-mail body and a chat card, with every outside name rendered inert.

Tags, repositories, pod and namespace names, cluster names, user names and the pusher's identity come from
whoever pushed or deployed. They reach a person's mail client or chat channel, where markup, links, mentions
and line breaks act: a tag cannot hold a newline (the distribution grammar), but a Kubernetes user name, a
pod annotation-derived name, a CloudTrail principal or a revert detail can hold anything. So:

- every outside value goes through `plain` (e-mail) or `chat_value` (chat) and nothing else does;
- `plain` drops control, format (zero-width, bidi override) and line/paragraph-separator characters,
  defangs URL schemes (`https://` -> `https[:]//`), `www.`, bare domains (`evil.com` -> `evil[.]com`) and
  e-mail addresses (`a[@]b[.]c`), which mail clients would turn into links, and caps the length: one
  value is one piece of one line, whatever it holds;
- `chat_value` also swaps the characters chat markup acts on (backtick, `<`, `>`, `&`, `@`, and `[`, `]`,
  `*`, `_`, which Teams formats even inside what Slack shows as code) for look-alikes and wraps the value
  in a code span, where neither Slack's nor Teams' markdown formats, links or mentions anything: all the
  text outside code spans is Tagwarden's own.

Commands (the "look closer" lines) never go through `plain`: defanging would break them. Every name in a
command is first checked against the characters an image reference can hold (`reference_ok`: no space,
quote, bracket, backtick, `<`, `>`, `&` or newline) and shell-quoted; a name that fails the check gets no
command. Image references that pass the check are shown exactly too (a person copies them). The commands
name the deployed stack (`CommandScope`: `--stack-name`, `--region`), so they work as printed. The sinks'
envelopes (SNS, Amazon Q Developer, Security Hub) are the adapters'; this module only knows the alert.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from tagwarden.clock import iso
from tagwarden.domain.alerts import Alert, AlertType, RevertStatus
from tagwarden.domain.identity import actor_label
from tagwarden.domain.images import (
    InvalidReferenceError,
    validate_digest,
    validate_registry,
    validate_registry_tag,
    validate_repository,
)
from tagwarden.domain.tag_protection import created_by_template

# Unicode categories no outside value may bring in: controls (newline, escape), format characters
# (zero-width joiners and spaces, bidi overrides that reorder a line), separators (U+2028 and U+2029 break a
# line), private use, surrogates and unassigned code points.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
# One value never fills a screen: a 63-character pod name or a 128-character tag fits, a pasted essay not.
VALUE_LIMIT = 200
_WWW = re.compile(r"(?i)(?<![a-z0-9])www\.")
# A bare domain's last dot (`evil.com`, `shop.evil.io`) and an e-mail address's `@`: mail clients link both.
_DOMAIN_DOT = re.compile(r"(?i)(?<=[a-z0-9-])\.(?=[a-z]{2,63}(?![a-z0-9_]))")
_MAIL_AT = re.compile(r"(?i)(?<=[a-z0-9._%+-])@(?=[a-z0-9-]+\[?\.)")
# What markup acts on, swapped for characters that look alike and act on nothing: < > & make Slack's
# <!here>, <@U123>, <url|text> and entities (and HTML in Security Hub consoles and ticket tools).
_MARKUP_LOOKALIKES = {"<": "\u2039", ">": "\u203a", "&": "\uff06"}
# In chat also ` (closes the code span) and what Teams' Adaptive Cards format where there is no inline code:
# [ ] (links), * and _ (emphasis).
_CHAT_LOOKALIKES = str.maketrans(
    {**_MARKUP_LOOKALIKES, "`": "\u02cb", "[": "\uff3b", "]": "\uff3d", "*": "\u2217", "_": "\uff3f"}
)
_TEXT_LOOKALIKES = str.maketrans(_MARKUP_LOOKALIKES)
# `@` makes a mention in Teams and Slack: swapped too, except as a digest reference's separator.
_MENTION = re.compile(r"@(?!sha256:[0-9a-f]{64}\b)")
# A CloudFormation stack name and an AWS region, as the commands' global options take them.
_STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
_REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]+")
# SNS: "Subjects must be ASCII text ... must not include line breaks or control characters; and must be less
# than 100 characters long."
SUBJECT_LIMIT = 99

TYPE_TITLES: dict[AlertType, str] = {
    AlertType.TAG_OVERWRITTEN: "Protected tag overwritten",
    AlertType.TAG_MOVED_AFTER_SCAN: "Tag moved after its scan",
    AlertType.UNSCANNED_IMAGE_DEPLOYED: "Unscanned image deployed",
    AlertType.VULNERABLE_IMAGE_DEPLOYED: "Vulnerable image deployed",
    AlertType.DEPLOYED_DIGEST_MISMATCH: "Running digest is not the scanned one",
    AlertType.TAG_PROTECTION_WEAKENED: "Tag protection weakened",
}


def plain(value: object, limit: int = VALUE_LIMIT) -> str:
    """An outside value as inert one-line text: no control or invisible characters, no link, bounded length."""
    text = "".join(
        " " if char.isspace() else char
        for char in str(value)
        if unicodedata.category(char) not in _DROPPED_CATEGORIES or char in "\t\n\r\v\f"
    )
    text = " ".join(text[: limit * 2].split())
    text = text.replace("://", "[:]//")
    text = _WWW.sub(lambda match: match.group(0)[:3] + "[.]", text)
    text = _MAIL_AT.sub("[@]", text)
    text = _DOMAIN_DOT.sub("[.]", text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def chat_value(value: object, limit: int = VALUE_LIMIT) -> str:
    """An outside value for chat markdown: `plain`, markup characters swapped for look-alikes, in a code span."""
    text = _MENTION.sub("\uff20", plain(value, limit).translate(_CHAT_LOOKALIKES))
    return f"`{text}`" if text else "` `"


def finding_text(value: object, limit: int) -> str:
    """Outside text for a Security Hub finding: `plain`, with `<`, `>`, `&` and `@` swapped as in chat (consoles
    and the ticket tools findings flow into render HTML or markdown)."""
    return _MENTION.sub("\uff20", plain(value, limit).translate(_TEXT_LOOKALIKES))


def chat_command(command: str) -> str:
    """A command (or an image reference) as a chat code span, exact: its names passed `names_ok`, so it holds
    nothing markup acts on."""
    return f"`{command}`"


def _grammatical(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
    except InvalidReferenceError:
        return False
    return True


def names_ok(alert: Alert) -> bool:
    """Whether the alert's registry, repository (or creation template prefix) and tag pass the distribution
    grammar, so its image reference can be shown and copied exactly: nothing in it a shell, a markup or a mail
    client acts on (no space, quote, bracket, `<`, `>`, `&`, `@`, `//` or newline)."""
    repository_ok = _grammatical(validate_repository, alert.repository) or (
        created_by_template(alert) and alert.repository == "ROOT"
    )
    return (
        repository_ok
        and _grammatical(validate_registry, alert.registry)
        and (alert.tag is None or _grammatical(validate_registry_tag, alert.tag))
    )


def digest_ok(digest: str) -> bool:
    """Whether a digest is a well-formed content digest (shown and copied exactly)."""
    return _grammatical(validate_digest, digest)


def image_reference(alert: Alert) -> str:
    """The image as `tagwarden` reads it: `registry/repository:tag`, or the repository alone."""
    base = f"{alert.registry}/{alert.repository}"
    return f"{base}:{alert.tag}" if alert.tag else base


def _digest_reference(alert: Alert, digest: str) -> str:
    return f"{alert.registry}/{alert.repository}@{digest}"


@dataclass(frozen=True, slots=True)
class CommandScope:
    """The deployed stack the `tagwarden` commands ask: its name, region and account (the functions know all)."""

    stack_name: str | None = None
    region: str | None = None
    account: str | None = None

    def options(self) -> str:
        """The command's global options naming the stack, checked and quoted like the names."""
        parts = []
        if self.stack_name and _STACK_NAME.fullmatch(self.stack_name):
            parts.append(f" --stack-name {shlex.quote(self.stack_name)}")
        if self.region and _REGION.fullmatch(self.region):
            parts.append(f" --region {shlex.quote(self.region)}")
        return "".join(parts)


# Commands without stack options: for renderings outside a deployed function (tests, the demo).
NO_STACK = CommandScope()


def is_ecr(alert: Alert) -> bool:
    """Whether the image is in an ECR registry (the alert names its account and region), the one kind
    Tagwarden keeps a ledger of."""
    return alert.account is not None and alert.region is not None


def _ledger_saw_it(alert: Alert) -> bool:
    # A deployment of a tag the ledger never saw carries no digest from it; `tagwarden history` of such a tag
    # is a usage error (exit 2), `tagwarden check` says why it refuses.
    return bool(alert.current_digest or alert.previous_digest or alert.scanned_digest)


def history_command(alert: Alert, scope: CommandScope) -> str | None:
    """`tagwarden history` of the alert's tag, if it is an ECR tag the ledger has."""
    if not (alert.tag and is_ecr(alert) and names_ok(alert) and _ledger_saw_it(alert)):
        return None
    return f"tagwarden history {shlex.quote(image_reference(alert))}{scope.options()}"


def look_closer_commands(alert: Alert, scope: CommandScope = NO_STACK) -> tuple[str, ...]:
    """The exact commands that show more, each runnable as printed: the tag's timeline, the gate's verdict, the
    scan's findings, the repository's or creation template's settings. None for a non-ECR image
    (`look_closer_advice` says what to do) or a name that fails `reference_ok`."""
    if not is_ecr(alert) or not names_ok(alert):
        return ()
    assert alert.account is not None and alert.region is not None
    if not (re.fullmatch(r"[0-9]{12}", alert.account) and _REGION.fullmatch(alert.region)):
        return ()
    ecr = f"--registry-id {shlex.quote(alert.account)} --region {shlex.quote(alert.region)}"
    repository = shlex.quote(alert.repository)
    if alert.type is AlertType.TAG_PROTECTION_WEAKENED:
        if created_by_template(alert):
            # DescribeRepositoryCreationTemplates reads the caller's own registry: no --registry-id.
            commands = [
                f"aws ecr describe-repository-creation-templates --prefixes {repository}"
                f" --region {shlex.quote(alert.region)}"
            ]
        else:
            commands = [f"aws ecr describe-repositories --repository-names {repository} {ecr}"]
        if scope.region == alert.region and scope.account in (None, alert.account):
            # Every repository of the session's account and region (the stack's), judged by the stack's
            # protected patterns: not a member account's, nor another region's.
            commands.append(f"tagwarden posture{scope.options()}")
        return tuple(commands)
    commands = []
    history = history_command(alert, scope)
    if history is not None:
        commands.append(history)
    running = alert.current_digest or alert.scanned_digest
    if running and not digest_ok(running):
        running = None
    target = _digest_reference(alert, running) if running else image_reference(alert)
    commands.append(f"tagwarden check {shlex.quote(target)}{scope.options()}")
    if alert.type is AlertType.VULNERABLE_IMAGE_DEPLOYED and running:
        # Basic and enhanced (Amazon Inspector) scanning alike: ECR returns the image's findings.
        commands.append(
            f"aws ecr describe-image-scan-findings --repository-name {repository}"
            f" --image-id imageDigest={shlex.quote(running)} {ecr}"
        )
    if not alert.tag:
        commands.append(f"aws ecr describe-repositories --repository-names {repository} {ecr}")
    return tuple(commands)


def look_closer_advice(alert: Alert, scope: CommandScope = NO_STACK) -> str | None:
    """What to do instead of commands: for an image Tagwarden keeps no ledger of (not in ECR), or names that
    fail the grammar check (no command is printed with them)."""
    if is_ecr(alert):
        if look_closer_commands(alert, scope):
            return None
        return "No command: a name in this alert is not a valid image reference (the alert's JSON has it as sent)."
    registry = alert.registry if _grammatical(validate_registry, alert.registry) else plain(alert.registry, 200)
    return (
        f"{registry} is not an ECR registry: Tagwarden keeps no ledger of its tags or scans, so "
        "there is no tagwarden command for it. Copy the image into ECR (a pull-through cache rule or a mirror) "
        "so it is scanned, and deploy it from there by its digest."
    )


@dataclass(frozen=True, slots=True)
class Fact:
    """One labelled fact: `text` is inert already (outside values `plain`), `command` an exact command after it."""

    label: str
    text: str
    command: str | None = None

    def email(self) -> str:
        """The fact as one line of the e-mail: the text, then the exact command or reference."""
        return " ".join(part for part in (self.text, self.command) if part)


def who_changed(alert: Alert, scope: CommandScope = NO_STACK) -> Fact | None:
    """Who made the change, as CloudTrail named them; for a tag move CloudTrail has not reported yet, "not yet
    known" and the command that shows it once it has (the alert is not sent again). None when the question does
    not apply: a deployment finding names its Kubernetes user instead; a settings change always comes from
    CloudTrail, with its caller."""
    label = "Who changed it" if alert.type is AlertType.TAG_PROTECTION_WEAKENED else "Who pushed"
    actor = alert.actor
    if actor is not None:
        text = plain(actor_label(actor), 300)
        if actor.arn and actor.principal and actor.arn != actor.principal:
            text += f" ({plain(actor.arn)})"
        return Fact(label, text)
    if alert.type not in (AlertType.TAG_OVERWRITTEN, AlertType.TAG_MOVED_AFTER_SCAN):
        return None
    history = history_command(alert, scope)
    if history is None:
        return Fact(label, "not yet known (CloudTrail has not reported the push)")
    return Fact(label, "not yet known; once CloudTrail reports the push, this shows it:", history)


def _digest_facts(alert: Alert) -> list[Fact]:
    """Each distinct digest once, labelled with every role it plays (the scanned one is often the previous or
    the current one)."""
    reverted = alert.revert is not None and alert.revert.status is RevertStatus.REVERTED
    current_label = "Current digest"
    if alert.type is AlertType.DEPLOYED_DIGEST_MISMATCH:
        current_label = "Running digest"
    elif reverted:
        current_label = "Pushed digest (undone)"
    scanned = ""
    if alert.scanned_digest:
        scanned = f" (scanned {iso(alert.scanned_at)})" if alert.scanned_at else " (scanned)"
    facts: list[Fact] = []
    shown_scanned = False
    for label, digest in (("Previous digest", alert.previous_digest), (current_label, alert.current_digest)):
        if not digest:
            continue
        text = plain(digest)
        if digest == alert.scanned_digest:
            text += scanned.replace(" (scanned", " (the scanned one, scanned", 1)
            shown_scanned = True
        facts.append(Fact(label, text))
    if alert.scanned_digest and not shown_scanned:
        facts.append(Fact("Scanned digest", plain(alert.scanned_digest) + scanned))
    if reverted and alert.previous_digest:
        facts.append(Fact("Tag now names", f"{plain(alert.previous_digest)} again (the previous digest)"))
    return facts


def _facts(alert: Alert, scope: CommandScope) -> list[Fact]:
    """Labelled facts, outside values already `plain`: the body of the e-mail, the chat card and the finding."""
    # A grammar-checked reference is exact (as a command is: copied, never defanged), else inert text.
    image = image_reference(alert)
    exact = names_ok(alert) and len(image) <= 400
    facts: list[Fact] = [Fact("Image", "", image) if exact else Fact("Image", plain(image, 400))]
    if alert.account or alert.region:
        facts.append(Fact("Account / region", f"{plain(alert.account or '-')} / {plain(alert.region or '-')}"))
    facts += _digest_facts(alert)
    if alert.kubernetes:
        k8s = alert.kubernetes
        namespace = plain(k8s.namespace or "-")
        where = f"cluster {plain(k8s.cluster)}, namespace {namespace}, {plain(k8s.kind)} {plain(k8s.name)}"
        facts.append(Fact("Deployed at", where))
        if k8s.user:
            facts.append(Fact("Deployed by", plain(k8s.user)))
    for site in alert.in_use[:5]:
        facts.append(
            Fact(
                "Runs at",
                f"cluster {plain(site.cluster)}, namespace {plain(site.namespace)}, workload {plain(site.workload)}"
                f" (last seen {iso(site.last_seen)})",
            )
        )
    if len(alert.in_use) > 5:
        facts.append(Fact("Runs at", f"and {len(alert.in_use) - 5} more workloads"))
    who = who_changed(alert, scope)
    if who is not None:
        facts.append(who)
    if alert.revert:
        facts.append(Fact("Revert", _revert_text(alert)))
    facts.append(Fact("Event time", iso(alert.event_time)))
    facts.append(Fact("Detected", iso(alert.detected_at)))
    return facts


def _revert_text(alert: Alert) -> str:
    assert alert.revert is not None
    status = {
        RevertStatus.PENDING: "pending",
        RevertStatus.REVERTED: "reverted: the tag is back on the previous digest",
        RevertStatus.NOT_REVERTED: "not reverted",
    }[alert.revert.status]
    return f"{status} ({plain(alert.revert.detail)})" if alert.revert.detail else status


def email_subject(alert: Alert) -> str:
    """The SNS Subject (the e-mail's subject): ASCII only, one line, under 100 characters, cut with `...`.
    Not defanged: a subject is not linked, and `[.]` would only garble the image's name."""
    text = "".join(
        char if " " <= char <= "~" else ("" if unicodedata.category(char) in _DROPPED_CATEGORIES else "?")
        for char in " ".join(alert.subject.split())
    )
    return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3] + "..."


def email_text(alert: Alert, limit: int | None = None, scope: CommandScope = NO_STACK) -> str:
    """The plain-text e-mail body: what happened, which image and digests, where it runs, who pushed, what to
    do, and the commands to look closer. `limit` caps its length in UTF-8 bytes (cut at the end, marked)."""
    lines = [
        f"{TYPE_TITLES[alert.type]} ({alert.severity})",
        "",
        plain(alert.summary, 1000),
        "",
    ]
    facts = _facts(alert, scope)
    width = max(len(fact.label) for fact in facts)
    lines += [f"{fact.label + ':':<{width + 1}} {fact.email()}" for fact in facts]
    lines += ["", "What to do:", f"  {plain(alert.runbook, 2000)}", "", "Look closer:"]
    lines += [f"  {command}" for command in look_closer_commands(alert, scope)]
    advice = look_closer_advice(alert, scope)
    if advice is not None:
        lines.append(f"  {advice}")
    if alert.evidence:
        lines += ["", "Evidence (source event ids): " + ", ".join(plain(item, 100) for item in alert.evidence[:10])]
    lines += ["", f"Alert id: {alert.alert_id} (schema {alert.schema_}; the same finding always has this id)"]
    text = "\n".join(lines) + "\n"
    return text if limit is None else truncate_utf8(text, limit)


def truncate_utf8(text: str, limit: int, marker: str = "\n[... cut to fit the message size limit]\n") -> str:
    """`text` cut to at most `limit` UTF-8 bytes on a character boundary, with a marker saying so."""
    data = text.encode()
    if len(data) <= limit:
        return text
    room = max(0, limit - len(marker.encode()))
    return data[:room].decode(errors="ignore") + marker


@dataclass(frozen=True, slots=True)
class ChatCard:
    """What a chat notification shows: a title, a markdown description and next steps (all inert)."""

    title: str
    description: str
    next_steps: tuple[str, ...]
    keywords: tuple[str, ...]


# Our own caps (the chat clients truncate long messages on their own): a card stays readable at a glance.
CHAT_TITLE_LIMIT = 250
CHAT_DESCRIPTION_LIMIT = 3000


def chat_card(alert: Alert, scope: CommandScope = NO_STACK) -> ChatCard:
    """The alert as a chat card; every outside value is a `chat_value` code span, every command exact."""
    image = image_reference(alert)
    shown = chat_command(image) if names_ok(alert) and len(image) <= 180 else chat_value(image, 180)
    title = f"{alert.severity} {TYPE_TITLES[alert.type]}: {shown}"
    lines = [f"*{fact.label}:* {_chat_fact(fact)}" for fact in _chat_facts(alert, scope)]
    description = "\n".join(lines)
    if len(description) > CHAT_DESCRIPTION_LIMIT:
        # Cut between lines, never inside a code span (an open span would un-inert the rest).
        kept: list[str] = []
        for line in lines:
            if sum(len(item) + 1 for item in kept) + len(line) > CHAT_DESCRIPTION_LIMIT - 40:
                break
            kept.append(line)
        description = "\n".join([*kept, "(more in the e-mail or the ledger)"])
    advice = look_closer_advice(alert, scope)
    steps = (
        chat_value(plain(alert.runbook, 600), 600),
        *(chat_command(command) for command in look_closer_commands(alert, scope)),
        *((chat_value(advice, 600),) if advice is not None else ()),
    )
    return ChatCard(
        title=title if len(title) <= CHAT_TITLE_LIMIT else f"{alert.severity} {TYPE_TITLES[alert.type]}",
        description=description,
        next_steps=steps,
        keywords=(alert.severity.value, alert.type.value),
    )


def _chat_facts(alert: Alert, scope: CommandScope) -> list[Fact]:
    return [Fact("What happened", plain(alert.summary, 600)), *_facts(alert, scope), Fact("Alert id", alert.alert_id)]


def _chat_fact(fact: Fact) -> str:
    # Facts are `plain` already; they still carry outside text, so each goes in its own code span.
    parts = [chat_value(fact.text, 600)] if fact.text or not fact.command else []
    if fact.command:
        parts.append(chat_command(fact.command))
    return " ".join(parts)
