"""Sample events from `events/`, and variations of them built by changing only the named fields."""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from typing import Any

from tests.support.template import REPO_ROOT

EVENTS = REPO_ROOT / "events"


@cache
def _load(relative: str) -> str:
    return (EVENTS / relative).read_text()


def load_event(relative: str) -> dict[str, Any]:
    """A fresh copy of a sample event."""
    event: dict[str, Any] = json.loads(_load(relative))
    return event


def ecr_image_action(
    *,
    tag: str | None,
    digest: str,
    time: str,
    action: str = "PUSH",
    repository: str = "shop/api",
    event_id: str | None = None,
    result: str = "SUCCESS",
    account: str | None = None,
) -> dict[str, Any]:
    """An ECR Image Action event shaped like `events/push_guard/push_tagged.json`."""
    event = copy.deepcopy(load_event("push_guard/push_tagged.json"))
    event["id"] = event_id or str(uuid.uuid4())
    event["time"] = time
    if account is not None:
        event["account"] = account
    detail = event["detail"]
    detail.update({"action-type": action, "result": result, "repository-name": repository, "image-digest": digest})
    if tag is None:
        detail.pop("image-tag", None)
    else:
        detail["image-tag"] = tag
    return event


def ecr_scan(
    *,
    digest: str,
    tags: list[str],
    time: str,
    counts: dict[str, int] | None = None,
    status: str = "COMPLETE",
    repository: str = "shop/api",
    event_id: str | None = None,
) -> dict[str, Any]:
    """An ECR Image Scan event shaped like `events/scan_recorder/ecr_scan_complete.json`."""
    event = copy.deepcopy(load_event("scan_recorder/ecr_scan_complete.json"))
    event["id"] = event_id or str(uuid.uuid4())
    event["time"] = time
    detail = event["detail"]
    detail.update({"scan-status": status, "repository-name": repository, "image-digest": digest, "image-tags": tags})
    if status == "FAILED":
        detail.pop("finding-severity-counts", None)
    else:
        detail["finding-severity-counts"] = counts if counts is not None else {"MEDIUM": 1}
    return event
