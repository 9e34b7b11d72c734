"""Alerts as people read them: an e-mail body and a chat card, with every outside name rendered inert.

Tags, repositories, pod and namespace names, cluster names, user names and the pusher's identity come from
whoever pushed or deployed. They reach a person's mail client or chat channel, where markup, links, mentions
and line breaks act: a tag cannot hold a newline (the distribution grammar), but a Kubernetes user name, a
pod annotation-derived name, a CloudTrail principal or a revert detail can hold anything. So:

- every outside value goes through `plain` (e-mail) or `chat_value` (chat) and nothing else does;
- `plain` drops control, format (zero-width, bidi override) and line/paragraph-separator characters,
  defangs URL schemes (`https://` -> `https[:]//`) and `www.`, and caps the length: one value is one
  piece of one line, whatever it holds;
- `chat_value` also swaps the characters chat markup acts on (backtick, `<`, `>`, `&`, `@`) for
  look-alikes and wraps the value in a code span, where neither Slack's nor Teams' markdown formats,
  links or mentions anything: all the text outside code spans is Tagwarden's own.

Image references in the `tagwarden` command lines are shown exactly (a person copies them): the ledger only
holds names the distribution grammar accepts (no spaces, quotes, angle brackets, `@` or newlines), and the
reference is shell-quoted anyway. The sinks' envelopes (SNS, Amazon Q Developer, Security Hub) are the
adapters'; this module only knows the alert.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass

from tagwarden.clock import iso
from tagwarden.domain.alerts import Alert, AlertType, RevertStatus

# Unicode categories no outside value may bring in: controls (newline, escape), format characters
# (zero-width joiners and spaces, bidi overrides that reorder a line), separators (U+2028 and U+2029 break a
# line), private use, surrogates and unassigned code points.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
# One value never fills a screen: a 63-character pod name or a 128-character tag fits, a pasted essay not.
VALUE_LIMIT = 200
_WWW = re.compile(r"(?i)(?<![a-z0-9])www\.")
# What chat markup acts on, swapped for characters that look alike and act on nothing: ` closes the code
# span, < > & make Slack's <!here>, <@U123>, <url|text> and entities, @ makes a mention in Teams and Slack.
_CHAT_LOOKALIKES = str.maketrans({"`": "\u02cb", "<": "\u2039", ">": "\u203a", "&": "\uff06"})
# `@` too, except as a digest reference's separator (`repo@sha256:...`, in the commands), which mentions nobody.
_MENTION = re.compile(r"@(?!sha256:[0-9a-f]{64}\b)")

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
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def chat_value(value: object, limit: int = VALUE_LIMIT) -> str:
    """An outside value for chat markdown: `plain`, markup characters swapped for look-alikes, in a code span."""
    text = _MENTION.sub("\uff20", plain(value, limit).translate(_CHAT_LOOKALIKES))
    return f"`{text}`" if text else "` `"


def image_reference(alert: Alert) -> str:
    """The image as `tagwarden` reads it: `registry/repository:tag`, or the repository alone."""
    base = f"{alert.registry}/{alert.repository}"
    return f"{base}:{alert.tag}" if alert.tag else base


def _digest_reference(alert: Alert, digest: str) -> str:
    return f"{alert.registry}/{alert.repository}@{digest}"


def look_closer_commands(alert: Alert) -> tuple[str, ...]:
    """The exact commands that show more: the tag's timeline, the gate's verdict, the repository's settings."""
    commands: list[str] = []
    if alert.tag:
        commands.append(f"tagwarden history {shlex.quote(image_reference(alert))}")
    running = alert.current_digest or alert.scanned_digest
    if alert.type is not AlertType.TAG_PROTECTION_WEAKENED:
        target = _digest_reference(alert, running) if running else image_reference(alert)
        commands.append(f"tagwarden check {shlex.quote(target)}")
    if alert.type is AlertType.TAG_PROTECTION_WEAKENED or not alert.tag:
        command = f"aws ecr describe-repositories --repository-names {shlex.quote(alert.repository)}"
        if alert.account:
            command += f" --registry-id {alert.account}"
        if alert.region:
            command += f" --region {alert.region}"
        commands.append(command)
    return tuple(commands)


def who_pushed(alert: Alert) -> str | None:
    """Who made the change, as CloudTrail named them; "not yet known" for a tag move without it yet; None when
    the question does not apply (a deployment finding names its Kubernetes user instead)."""
    actor = alert.actor
    if actor is None:
        tag_change = alert.type in (
            AlertType.TAG_OVERWRITTEN,
            AlertType.TAG_MOVED_AFTER_SCAN,
            AlertType.TAG_PROTECTION_WEAKENED,
        )
        return "not yet known" if tag_change else None
    who = plain(actor.principal or actor.arn or "unknown principal")
    if actor.arn and actor.principal:
        who += f" ({plain(actor.arn)})"
    if actor.source_ip:
        who += f" from {plain(actor.source_ip, 64)}"
    return who


def _facts(alert: Alert) -> list[tuple[str, str]]:
    """Labelled facts, outside values already `plain`: the body of both the e-mail and the chat card."""
    facts: list[tuple[str, str]] = [("Image", plain(image_reference(alert), 400))]
    if alert.account or alert.region:
        facts.append(("Account / region", f"{plain(alert.account or '-')} / {plain(alert.region or '-')}"))
    if alert.previous_digest:
        facts.append(("Previous digest", plain(alert.previous_digest)))
    if alert.current_digest:
        facts.append(("Current digest", plain(alert.current_digest)))
    if alert.scanned_digest:
        scanned = plain(alert.scanned_digest)
        if alert.scanned_at:
            scanned += f" (scanned {iso(alert.scanned_at)})"
        facts.append(("Scanned digest", scanned))
    if alert.kubernetes:
        k8s = alert.kubernetes
        namespace = plain(k8s.namespace or "-")
        where = f"cluster {plain(k8s.cluster)}, namespace {namespace}, {plain(k8s.kind)} {plain(k8s.name)}"
        facts.append(("Deployed at", where))
        if k8s.user:
            facts.append(("Deployed by", plain(k8s.user)))
    for site in alert.in_use[:5]:
        facts.append(
            (
                "Runs at",
                f"cluster {plain(site.cluster)}, namespace {plain(site.namespace)}, workload {plain(site.workload)}"
                f" (last seen {iso(site.last_seen)})",
            )
        )
    if len(alert.in_use) > 5:
        facts.append(("Runs at", f"and {len(alert.in_use) - 5} more workloads"))
    who = who_pushed(alert)
    if who is not None:
        facts.append(("Who changed it" if alert.type is AlertType.TAG_PROTECTION_WEAKENED else "Who pushed", who))
    if alert.revert:
        facts.append(("Revert", _revert_text(alert)))
    facts.append(("Event time", iso(alert.event_time)))
    facts.append(("Detected", iso(alert.detected_at)))
    return facts


def _revert_text(alert: Alert) -> str:
    assert alert.revert is not None
    status = {
        RevertStatus.PENDING: "pending",
        RevertStatus.REVERTED: "reverted to the previous digest",
        RevertStatus.NOT_REVERTED: "not reverted",
    }[alert.revert.status]
    return f"{status}: {plain(alert.revert.detail)}" if alert.revert.detail else status


def email_subject(alert: Alert) -> str:
    """The e-mail subject: the schema's subject, made inert (SNS allows no control characters in it)."""
    return plain(alert.subject, 100)


def email_text(alert: Alert, limit: int | None = None) -> str:
    """The plain-text e-mail body: what happened, which image and digests, where it runs, who pushed, what to
    do, and the commands to look closer. `limit` caps its length in UTF-8 bytes (cut at the end, marked)."""
    lines = [
        f"{TYPE_TITLES[alert.type]} ({alert.severity})",
        "",
        plain(alert.summary, 1000),
        "",
    ]
    width = max(len(label) for label, _ in _facts(alert))
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in _facts(alert)]
    lines += ["", "What to do:", f"  {plain(alert.runbook, 2000)}", "", "Look closer:"]
    lines += [f"  {plain(command, 1000)}" for command in look_closer_commands(alert)]
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


def chat_card(alert: Alert) -> ChatCard:
    """The alert as a chat card; every outside value is a `chat_value` code span."""
    title = f"{alert.severity} {TYPE_TITLES[alert.type]}: {chat_value(image_reference(alert), 180)}"
    lines = [f"*{label}:* {_chat_fact(value)}" for label, value in _chat_facts(alert)]
    description = "\n".join(lines)
    if len(description) > CHAT_DESCRIPTION_LIMIT:
        # Cut between lines, never inside a code span (an open span would un-inert the rest).
        kept: list[str] = []
        for line in lines:
            if sum(len(item) + 1 for item in kept) + len(line) > CHAT_DESCRIPTION_LIMIT - 40:
                break
            kept.append(line)
        description = "\n".join([*kept, "(more in the e-mail or the ledger)"])
    steps = (chat_value(plain(alert.runbook, 600), 600), *(chat_value(c, 600) for c in look_closer_commands(alert)))
    return ChatCard(
        title=title if len(title) <= CHAT_TITLE_LIMIT else f"{alert.severity} {TYPE_TITLES[alert.type]}",
        description=description,
        next_steps=steps,
        keywords=(alert.severity.value, alert.type.value),
    )


def _chat_facts(alert: Alert) -> list[tuple[str, str]]:
    return [("What happened", plain(alert.summary, 600)), *_facts(alert), ("Alert id", alert.alert_id)]


def _chat_fact(value: str) -> str:
    # Facts are `plain` already; they still carry outside text, so each goes in its own code span.
    return chat_value(value, 600)
