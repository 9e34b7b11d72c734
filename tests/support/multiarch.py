"""Multi-platform images as buildx pushes them to ECR: real manifests in moto's ECR, and the events ECR emits.

A build is an OCI image index naming one image manifest per platform and, per platform, an attestation
manifest (platform `unknown/unknown`, annotation `vnd.docker.reference.type: attestation-manifest`), in the
shape of Docker's "Image attestation storage" page (research 7.3). Every manifest is stored with its digest
given as the sha256 of its bytes, as ECR computes it (moto otherwise derives its own), so the registry's
digests and the events' agree. Events follow the captured ECR shapes (research 1.3): untagged manifests
carry `artifact-media-type`, the tagged index does not.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.events import EVENTS, load_event

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SAMPLES = EVENTS / "push_guard" / "multiarch"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(label: str) -> str:
    return sha256(label.encode())


def platform_manifest(build: str, platform: str) -> bytes:
    """An OCI image manifest for one platform of a build (config and layers named by digest only)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _blob(f"{build} {platform} config"), "size": 1471},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _blob(f"{build} {platform} layer {n}"),
                "size": 3_623_807 + n,
            }
            for n in range(2)
        ],
    }
    return (json.dumps(manifest, indent=2) + "\n").encode()


def attestation_manifest(build: str, platform: str) -> bytes:
    """BuildKit's provenance attestation manifest for one platform (in-toto layer, unknown config)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _blob(f"{build} {platform} attestation config"), "size": 167},
        "layers": [
            {
                "mediaType": "application/vnd.in-toto+json",
                "digest": _blob(f"{build} {platform} provenance"),
                "size": 1320,
                "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
            }
        ],
    }
    return (json.dumps(manifest, indent=2) + "\n").encode()


def index_manifest(entries: list[dict[str, Any]]) -> bytes:
    """An OCI image index over the given descriptors."""
    return (json.dumps({"mediaType": OCI_INDEX, "schemaVersion": 2, "manifests": entries}, indent=2) + "\n").encode()


@dataclass
class Build:
    """One `docker buildx build --platform ... --push`: its manifests' bytes and digests."""

    index: bytes
    platforms: dict[str, bytes]
    attestations: dict[str, bytes] = field(default_factory=dict)

    @property
    def index_digest(self) -> str:
        return sha256(self.index)

    def digest(self, platform: str) -> str:
        """The platform manifest's digest (`linux/amd64`)."""
        return sha256(self.platforms[platform])

    def attestation_digest(self, platform: str) -> str:
        return sha256(self.attestations[platform])


def build(name: str, platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"), *, attest: bool = True) -> Build:
    """The manifests of a build called `name` (different names, different content)."""
    images = {platform: platform_manifest(name, platform) for platform in platforms}
    attestations = {platform: attestation_manifest(name, platform) for platform in platforms} if attest else {}
    entries: list[dict[str, Any]] = []
    for platform, data in images.items():
        os_name, architecture, *variant = platform.split("/")
        described: dict[str, Any] = {"architecture": architecture, "os": os_name}
        if variant:
            described["variant"] = variant[0]
        entries.append({"mediaType": OCI_MANIFEST, "digest": sha256(data), "size": len(data), "platform": described})
    for platform, data in attestations.items():
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha256(data),
                "size": len(data),
                "annotations": {
                    "vnd.docker.reference.digest": sha256(images[platform]),
                    "vnd.docker.reference.type": "attestation-manifest",
                },
                "platform": {"architecture": "unknown", "os": "unknown"},
            }
        )
    return Build(index_manifest(entries), images, attestations)


def sample_build() -> Build:
    """The build stored in `events/push_guard/multiarch/` (the sample events name its digests)."""
    platforms = {p: (SAMPLES / f"{p.replace('/', '-')}.json").read_bytes() for p in ("linux/amd64", "linux/arm64")}
    attestations = {
        p: (SAMPLES / f"attestation-{p.replace('/', '-')}.json").read_bytes() for p in ("linux/amd64", "linux/arm64")
    }
    return Build((SAMPLES / "index.json").read_bytes(), platforms, attestations)


def put_build(ecr: ECRClient, repository: str, pushed: Build, tag: str | None) -> None:
    """Store the build as buildx pushes it: platform and attestation manifests untagged, then the index."""
    for data in [*pushed.platforms.values(), *pushed.attestations.values()]:
        ecr.put_image(
            repositoryName=repository, imageManifest=data.decode(), imageManifestMediaType=OCI_MANIFEST,
            imageDigest=sha256(data),
        )  # fmt: skip
    kwargs: dict[str, Any] = {"imageTag": tag} if tag else {}
    ecr.put_image(
        repositoryName=repository, imageManifest=pushed.index.decode(), imageManifestMediaType=OCI_INDEX,
        imageDigest=pushed.index_digest, **kwargs,
    )  # fmt: skip


def manifest_push(
    *,
    digest: str,
    time: str,
    tag: str | None = None,
    index: bool = False,
    repository: str = "shop/api",
    event_id: str | None = None,
) -> dict[str, Any]:
    """An ECR Image Action PUSH of one manifest, shaped like the sample index or platform push."""
    sample = "push_index_tagged.json" if index else "push_platform_untagged.json"
    event = copy.deepcopy(load_event(f"push_guard/{sample}"))
    event["id"] = event_id or str(uuid.uuid4())
    event["time"] = time
    event["detail"].update({"repository-name": repository, "image-digest": digest, "image-tag": tag or ""})
    return event


def build_pushes(pushed: Build, tag: str, time: str, repository: str = "shop/api") -> list[dict[str, Any]]:
    """The ECR events of pushing a build: one per platform and attestation manifest (untagged), then the index."""
    events = [
        manifest_push(digest=sha256(data), time=time, repository=repository)
        for data in [*pushed.platforms.values(), *pushed.attestations.values()]
    ]
    events.append(manifest_push(digest=pushed.index_digest, time=time, tag=tag, index=True, repository=repository))
    return events
