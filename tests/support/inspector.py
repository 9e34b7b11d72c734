"""Amazon Inspector events from `events/scan_recorder/`, varied per test by changing only the named fields."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from tests.support.events import load_event


def inspector_scan(
    *,
    digest: str,
    tags: list[str],
    time: str,
    counts: dict[str, int],
    event_id: str | None = None,
) -> dict[str, Any]:
    """An `Inspector2 Scan` summary shaped like `inspector_ecr_scan.json` (counts: CRITICAL/HIGH/MEDIUM/TOTAL)."""
    event = copy.deepcopy(load_event("scan_recorder/inspector_ecr_scan.json"))
    event["id"] = event_id or str(uuid.uuid4())
    event["time"] = time
    event["detail"].update({"image-digest": digest, "image-tags": tags, "finding-severity-counts": counts})
    return event


def inspector_finding(
    *,
    digest: str,
    time: str,
    severity: str,
    status: str = "ACTIVE",
    finding: str = "4f2a9c1d7e3b85a06c1d9e2f7a4b3c58",
    tags: list[str] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An `Inspector2 Finding` shaped like `inspector_ecr_finding.json`, for finding id `finding` on `digest`."""
    event = copy.deepcopy(load_event("scan_recorder/inspector_ecr_finding.json"))
    event["id"] = event_id or str(uuid.uuid4())
    event["time"] = time
    detail = event["detail"]
    detail["findingArn"] = detail["findingArn"].rsplit("/", 1)[0] + f"/{finding}"
    detail.update({"severity": severity, "status": status})
    (resource,) = detail["resources"]
    image_arn = resource["id"].rsplit("/", 1)[0] + f"/{digest}"
    resource["id"] = image_arn
    event["resources"] = [image_arn]
    for details in (resource["details"]["awsEcrContainerImage"], resource["details"]["image"]):
        details["imageHash" if "imageHash" in details else "imageDigest"] = digest
        if tags is not None:
            details["imageTags"] = tags
    return event
