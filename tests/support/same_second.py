"""Same-second pushes on moto's ECR: images put under a tag (ECR as the witness of which push came last) and
the ledger's pointer for the tag, shared by the integration tests and the ordering scenario."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.multiarch import OCI_MANIFEST, platform_manifest, sha256

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

    from tests.support.stack import Stack

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
# Event ids in both orders: the ledger orders same-second events by id, i.e. at random.
LOW_ID, HIGH_ID = "0a1b2c3d-0000-4000-8000-000000000001", "f9e8d7c6-ffff-4fff-bfff-fffffffffff1"


def put(ecr: ECRClient, name: str, tag: str) -> str:
    """Put a single-platform image built as `name` under `tag` in `shop/api`; its digest."""
    data = platform_manifest(name, "linux/amd64")
    ecr.put_image(
        repositoryName="shop/api", imageManifest=data.decode(), imageManifestMediaType=OCI_MANIFEST,
        imageTag=tag, imageDigest=sha256(data),
    )  # fmt: skip
    return sha256(data)


def ledger_pointer(stack: Stack, tag: str) -> str | None:
    """The digest the ledger's pointer for `shop/api:<tag>` names (None once the tag was deleted)."""
    pk = f"TAG#{REGISTRY}/shop/api:{tag}"
    (item,) = [i for i in stack.items() if i["pk"]["S"] == pk and i["sk"]["S"] == "POINTER"]
    return item["digest"]["S"] if "digest" in item else None
