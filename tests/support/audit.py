"""EKS audit lines from `events/audit_watcher/lines/`, varied per test, wrapped as CloudWatch Logs deliveries."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from collections.abc import Sequence
from typing import Any

from tests.support.events import EVENTS

LINES = EVENTS / "audit_watcher" / "lines"
ECR = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"


def audit_line(name: str) -> dict[str, Any]:
    """A fresh copy of a sample audit event."""
    line: dict[str, Any] = json.loads((LINES / name).read_text())
    return line


def with_images(line: dict[str, Any], image: str, image_id: str | None = None) -> dict[str, Any]:
    """The line with every container image (and, for status patches, imageID) replaced."""
    changed = copy.deepcopy(line)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "image" in node and isinstance(node["image"], str):
                node["image"] = image
            if image_id is not None and "imageID" in node:
                node["imageID"] = image_id
            for key, value in node.items():
                if key != "metadata":  # annotations keep whatever they said
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(changed.get("requestObject"))
    walk(changed.get("responseObject"))
    return changed


def at(line: dict[str, Any], moment: str) -> dict[str, Any]:
    """The line, as kube-apiserver would have logged it at `moment` (HH:MM:SS on the sample day)."""
    line["requestReceivedTimestamp"] = f"2026-11-20T{moment}.100000Z"
    line["stageTimestamp"] = f"2026-11-20T{moment}.120000Z"
    return line


def kubelet_status(pod: str, image: str, image_id: str, audit_id: str = "a1") -> dict[str, Any]:
    """A kubelet status patch of `pod` reporting `image_id` for a container started from `image`."""
    line = with_images(audit_line("pod_status_patch_plain.json"), image, image_id)
    line["objectRef"]["name"] = pod
    line["requestURI"] = f"/api/v1/namespaces/shop/pods/{pod}/status"
    line["auditID"] = audit_id
    return line


def envelope(
    messages: Sequence[dict[str, Any] | str],
    *,
    cluster: str = "prod-eks",
    message_type: str = "DATA_MESSAGE",
    stream: str = "kube-apiserver-audit-d9c12955a891f5b378a39dbd1383b507",
) -> dict[str, Any]:
    """A CloudWatch Logs subscription event (base64 of gzip of JSON), as Lambda receives it.

    One delivery carries the lines of one log stream; EKS's API server instances each write their own
    (`kube-apiserver-audit-<id>`), so two streams' deliveries interleave.
    """
    payload = {
        "messageType": message_type,
        "owner": "111122223333",
        "logGroup": f"/aws/eks/{cluster}/cluster",
        "logStream": stream,
        "subscriptionFilters": ["tagwarden-audit"],
        "logEvents": [
            {
                "id": f"{37927403318000000000000000000000000000000000000000000000 + n}",
                "timestamp": 1795167000000 + n,
                "message": m if isinstance(m, str) else json.dumps(m, separators=(",", ":")),
            }
            for n, m in enumerate(messages)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"awslogs": {"data": data}}
