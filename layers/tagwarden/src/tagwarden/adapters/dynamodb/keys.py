"""The ledger's key scheme: every kind of item in the one table, and where it lives.

| item           | pk                                       | sk                    |
|----------------|------------------------------------------|-----------------------|
| tag pointer    | `TAG#{registry}/{repository}:{tag}`      | `POINTER`             |
| tag history    | `TAG#{registry}/{repository}:{tag}`      | `MOVE#{time}#{event}` |
| digest record  | `IMAGE#{registry}/{repository}@{digest}` | `IMAGE`               |
| scan history   | `IMAGE#{registry}/{repository}@{digest}` | `SCAN#{time}#{event}` |
| image finding  | `IMAGE#{registry}/{repository}@{digest}` | `VULN#{finding id}`   |
| finding        | `FINDING#{alert_id}`                     | `FINDING`             |
| rollouts       | `WORKLOAD#{cluster}/{namespace}/{name}`  | `ROLLOUTS`            |
| pending actor  | `TAG#{registry}/{repository}:{tag}`      | `ACTOR#{action}#{digest}` |
| repo settings  | `REPO#{registry}/{repository}`           | `SETTINGS`            |
| template settings | `TEMPLATE#{registry}/{prefix}`        | `SETTINGS`            |

Names, tags and digests are validated before they reach a key, so `#`, `:` and `@` cannot be forged. A
cluster of another account than the stack's is `{account}:{region}:{name}` (`domain.workloads.cluster_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tagwarden.domain.images import ImageName
from tagwarden.domain.tags import TagRef

Item = dict[str, Any]
"""An item (or key) in DynamoDB's attribute-value form, as the client sends and returns it."""

POINTER_SK = "POINTER"
MOVE_PREFIX = "MOVE#"
# The first string after every `MOVE#...` key: `$` follows `#` in ASCII.
MOVE_UPPER_BOUND = "MOVE$"
IMAGE_SK = "IMAGE"
SCAN_PREFIX = "SCAN#"
FINDING_SK = "FINDING"
# Inspector's findings of one digest (the finding id is a hex digest of its ARN, safe in a key).
VULN_PREFIX = "VULN#"
ROLLOUTS_SK = "ROLLOUTS"
# Who pushed or deleted a digest as a tag (CloudTrail), kept until the push guard records that action.
ACTOR_PREFIX = "ACTOR#"
SETTINGS_SK = "SETTINGS"


def tag_pk(tag: TagRef) -> str:
    """Partition of a tag: its pointer and its whole history."""
    return f"TAG#{tag}"


def image_pk(image: ImageName, digest: str) -> str:
    """Partition of one digest in one repository."""
    return f"IMAGE#{image}@{digest}"


def finding_pk(alert_id: str) -> str:
    """Partition of one deployment finding (alert ids are hex digests, safe in a key)."""
    return f"FINDING#{alert_id}"


def workload_pk(location: str) -> str:
    """Partition of one workload (its location is `cluster/namespace/workload`)."""
    return f"WORKLOAD#{location}"


def rollouts_key(location: str) -> Item:
    """The key of a workload's rollouts."""
    return key(workload_pk(location), ROLLOUTS_SK)


def pending_actor_key(tag: TagRef, action: str, digest: str) -> Item:
    """Where CloudTrail's actor of an action waits for the push guard (in the tag's partition)."""
    return key(tag_pk(tag), f"{ACTOR_PREFIX}{action}#{digest}")


def settings_key(kind: str, registry: str, name: str) -> Item:
    """The latest tag mutability setting of a repository (`REPO`) or creation template prefix (`TEMPLATE`)."""
    return key(f"{kind}#{registry}/{name}", SETTINGS_SK)


def move_sk(event_key: str) -> str:
    """Sort key of a history entry: time order, then event id."""
    return f"{MOVE_PREFIX}{event_key}"


def scan_sk(event_key: str) -> str:
    """Sort key of a scan history entry."""
    return f"{SCAN_PREFIX}{event_key}"


def finding_sk(finding_id: str) -> str:
    """Sort key of one Inspector finding of a digest."""
    return f"{VULN_PREFIX}{finding_id}"


def key(pk: str, sk: str) -> Item:
    """A primary key in DynamoDB's attribute-value form."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def pointer_key(tag: TagRef) -> Item:
    """The key of a tag's pointer."""
    return key(tag_pk(tag), POINTER_SK)


def digest_key(image: ImageName, digest: str) -> Item:
    """The key of a digest record."""
    return key(image_pk(image, digest), IMAGE_SK)


def key_text(item: Mapping[str, Any]) -> str:
    """A hashable identity of an item's key (either form: attribute values or plain strings)."""
    pk, sk = item["pk"], item["sk"]
    return f"{pk['S'] if isinstance(pk, Mapping) else pk}\x00{sk['S'] if isinstance(sk, Mapping) else sk}"
