#!/usr/bin/env python3
"""Rebuild the CloudWatch Logs subscription envelopes from the audit lines.

Running this script rewrites, from the files in ``lines/``:

* ``cloudwatch_logs_envelope.json`` - a Lambda event ``{"awslogs": {"data": ...}}``
  whose ``data`` is base64(gzip(JSON)) of a ``DATA_MESSAGE`` payload from the
  EKS audit log stream ``/aws/eks/prod-eks/cluster`` / ``kube-apiserver-audit-<hex>``.
* ``cloudwatch_logs_control_message.json`` - the same wrapper around a
  ``CONTROL_MESSAGE`` payload (destination health check).
* ``kinesis_delivery.json`` - the organization's delivery: a Kinesis Data Streams
  Lambda event whose records' ``data`` is base64(gzip(JSON)) of the same
  payloads, as CloudWatch Logs writes them through the central stack's Logs
  destination: the control message it sends when the destination is created,
  then the ``DATA_MESSAGE`` of a member account's (``MEMBER_OWNER``) cluster
  of the same name. The record envelope follows Powertools for AWS Lambda
  (Python)'s ``tests/events/kinesisStreamCloudWatchLogsEvent.json`` (captured
  from a real CloudWatch Logs to Kinesis subscription).

Output is deterministic: the payload keys keep a fixed order, the gzip header
carries mtime 0, and the log event ids/timestamps are derived from the lines.

Usage::

    python3 events/audit_watcher/build_envelopes.py          # rewrite both files
    python3 events/audit_watcher/build_envelopes.py --check  # exit 1 if stale

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypedDict

HERE: Final[Path] = Path(__file__).resolve().parent
LINES_DIR: Final[Path] = HERE / "lines"
DATA_ENVELOPE: Final[Path] = HERE / "cloudwatch_logs_envelope.json"
KINESIS_DELIVERY: Final[Path] = HERE / "kinesis_delivery.json"
MEMBER_OWNER: Final[str] = "444455556666"
CENTRAL_ACCOUNT: Final[str] = "111122223333"
STREAM_ARN: Final[str] = (
    f"arn:aws:kinesis:eu-west-1:{CENTRAL_ACCOUNT}:stream/tagwarden-OrganizationAuditStream-Q1w2E3r4T5y6"
)
KINESIS_ROLE: Final[str] = f"arn:aws:iam::{CENTRAL_ACCOUNT}:role/tagwarden-AuditWatcherFunctionRole-Z9x8C7v6B5n4"
# Kinesis sequence numbers are 56-digit decimal strings growing within a shard; fixed, arbitrary.
SEQUENCE_BASE: Final[int] = 49_657_736_548_119_201_947_388_154_263_804_125_843_123_908_672_181_780_482
CONTROL_ENVELOPE: Final[Path] = HERE / "cloudwatch_logs_control_message.json"

OWNER: Final[str] = "111122223333"
LOG_GROUP: Final[str] = "/aws/eks/prod-eks/cluster"
LOG_STREAM: Final[str] = "kube-apiserver-audit-d9c12955a891f5b378a39dbd1383b507"
SUBSCRIPTION_FILTER: Final[str] = "tagwarden-audit-watcher"

# CloudWatch Logs event ids are opaque 56-digit decimal strings that grow with
# time inside a stream. The base value below is arbitrary but fixed.
EVENT_ID_BASE: Final[int] = 37_927_403_316_170_712_347_583_839_012_837_471_063_287_591_235_418_046_464
EVENT_ID_STEP: Final[int] = 7_316_242_085_123_456

PLAIN_TEXT_LINE: Final[str] = (
    "W1120 09:35:00.412907      11 reflector.go:561] storage/cacher.go:/pods: "
    "watch chan error: etcdserver: mvcc: required revision has been compacted"
)
PLAIN_TEXT_TIME: Final[str] = "2026-11-20T09:35:00.412907Z"
CONTROL_TIME: Final[str] = "2026-11-20T08:30:00.000000Z"
CONTROL_TEXT: Final[str] = "CWL CONTROL MESSAGE: Checking health of destination Firehose."


class LogEvent(TypedDict):
    id: str
    timestamp: int
    message: str


@dataclass(frozen=True)
class AuditLine:
    """A line copied verbatim from ``lines/<name>``."""

    name: str


@dataclass(frozen=True)
class TruncatedLine:
    """The first ``keep`` characters of ``lines/<name>`` (broken JSON)."""

    name: str
    keep: int


@dataclass(frozen=True)
class PlainText:
    """A non-JSON log line."""

    text: str
    time: str


Entry = AuditLine | TruncatedLine | PlainText

# Order of the log events in the DATA_MESSAGE (chronological, as delivered).
ENTRIES: Final[tuple[Entry, ...]] = (
    AuditLine("deployment_create.json"),
    AuditLine("pod_create_request_response.json"),
    AuditLine("pod_status_patch_creating.json"),
    AuditLine("pod_status_patch_plain.json"),
    PlainText(PLAIN_TEXT_LINE, PLAIN_TEXT_TIME),
    TruncatedLine("cronjob_create.json", keep=2048),
)


def read_line(name: str) -> str:
    """Return the single JSON line stored in ``lines/<name>`` (no newline)."""
    text = (LINES_DIR / name).read_text(encoding="utf-8").strip("\n")
    if "\n" in text:
        raise ValueError(f"{name}: expected exactly one line")
    json.loads(text)  # must be valid JSON
    return text


def epoch_ms(stamp: str) -> int:
    """Millisecond epoch of an RFC 3339 UTC timestamp with microseconds."""
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def received_ms(line: str) -> int:
    """Millisecond epoch of the audit event's requestReceivedTimestamp."""
    stamp: str = json.loads(line)["requestReceivedTimestamp"]
    return epoch_ms(stamp)


def build_log_events() -> list[LogEvent]:
    events: list[LogEvent] = []
    for index, entry in enumerate(ENTRIES):
        if isinstance(entry, AuditLine):
            message = read_line(entry.name)
            timestamp = received_ms(message)
        elif isinstance(entry, TruncatedLine):
            full = read_line(entry.name)
            if entry.keep >= len(full):
                raise ValueError(f"{entry.name}: keep={entry.keep} does not truncate")
            timestamp = received_ms(full)
            message = full[: entry.keep]
        else:
            message = entry.text
            timestamp = epoch_ms(entry.time)
        events.append(
            {
                "id": str(EVENT_ID_BASE + index * EVENT_ID_STEP + timestamp),
                "timestamp": timestamp,
                "message": message,
            }
        )
    return events


def data_payload() -> dict[str, object]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": OWNER,
        "logGroup": LOG_GROUP,
        "logStream": LOG_STREAM,
        "subscriptionFilters": [SUBSCRIPTION_FILTER],
        "logEvents": build_log_events(),
    }


def control_payload() -> dict[str, object]:
    return {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": epoch_ms(CONTROL_TIME), "message": CONTROL_TEXT}],
    }


def compressed(payload: dict[str, object]) -> str:
    """base64(gzip(JSON)) of ``payload``, as CloudWatch Logs writes a subscription delivery."""
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def kinesis_event(payloads: list[dict[str, object]], arrival: str) -> str:
    """The payloads as one Lambda event of the audit stream's event source mapping (one record each)."""
    arrived = epoch_ms(arrival) / 1000
    records = []
    for index, payload in enumerate(payloads):
        sequence = str(SEQUENCE_BASE + index * EVENT_ID_STEP)
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"{index:032x}",
                    "sequenceNumber": sequence,
                    "data": compressed(payload),
                    "approximateArrivalTimestamp": arrived + index,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": KINESIS_ROLE,
                "awsRegion": "eu-west-1",
                "eventSourceARN": STREAM_ARN,
            }
        )
    return json.dumps({"Records": records}, indent=2) + "\n"


def wrap(payload: dict[str, object]) -> str:
    """Serialize ``payload`` the way CloudWatch Logs hands it to Lambda."""
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    compressed = gzip.compress(raw, compresslevel=9, mtime=0)
    data = base64.b64encode(compressed).decode("ascii")
    return json.dumps({"awslogs": {"data": data}}, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify the files are current")
    args = parser.parse_args(argv)

    member = {**data_payload(), "owner": MEMBER_OWNER, "subscriptionFilters": ["tagwarden-audit"]}
    outputs = {
        DATA_ENVELOPE: wrap(data_payload()),
        CONTROL_ENVELOPE: wrap(control_payload()),
        KINESIS_DELIVERY: kinesis_event([control_payload(), member], "2026-11-20T09:35:01.000000Z"),
    }
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.name}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
