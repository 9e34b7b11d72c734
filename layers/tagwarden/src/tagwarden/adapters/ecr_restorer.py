"""The only ECR writer: puts an overwritten protected tag back on its previous manifest (opt-in revert).

Only the tag reverter's role may call `PutImage` (on the configured repository prefixes alone). A revert is
the previous manifest read with `BatchGetImage` (in the media types a tag may name) and written back with
`PutImage`, its exact bytes, its media type and its digest, under the tag: ECR stores no new content, and
the layers are the ones the previous image already had.
"""

from __future__ import annotations

from typing import Any

from tagwarden.adapters.ecr_registry import EcrRegistry, RegistryUnavailableError, _registry_errors
from tagwarden.domain.images import ImageName, ecr_host_parts
from tagwarden.domain.revert import IMMUTABLE, Mutability
from tagwarden.domain.tags import TagRef
from tagwarden.ports import RevertRefusedError, StoredManifest

# PutImage errors that retrying cannot change, with what they mean for the revert.
_PUT_REFUSALS = {
    "ImageTagAlreadyExistsException": IMMUTABLE,
    "LayersNotFoundException": "the previous image's layers are no longer in the repository",
    "ReferencedImagesNotFoundException": "the previous image index's platform images are no longer in the repository",
    "ImageDigestDoesNotMatchException": "the registry computed another digest for the previous manifest",
    "RepositoryNotFoundException": "the repository no longer exists",
}


class EcrTagRestorer(EcrRegistry):
    """The registry as the reverter sees it: mutability, where a tag points, manifests, and PutImage."""

    def mutability(self, image: ImageName) -> Mutability:
        """`imageTagMutability` of the repository (DescribeRepositories)."""
        with _registry_errors("DescribeRepositories"):
            response = self._client.describe_repositories(
                repositoryNames=[image.repository], **self._registry_id(image)
            )
        setting = response["repositories"][0].get("imageTagMutability", Mutability.MUTABLE.value)
        return Mutability(setting)

    def manifest(self, image: ImageName, digest: str) -> StoredManifest | None:
        """The manifest's bytes and media type (BatchGetImage by digest); None when ECR no longer holds it."""
        found = self._batch_get_image(image, {"imageDigest": digest})
        if found is None or not found.get("imageManifest"):
            return None
        media_type = found.get("imageManifestMediaType") or "application/vnd.docker.distribution.manifest.v2+json"
        return StoredManifest(found["imageManifest"], media_type)

    def put_tag(self, tag: TagRef, digest: str, manifest: StoredManifest) -> None:
        """PutImage of the manifest under the tag; an image already holding the tag counts as done."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_image(
                repositoryName=tag.image.repository,
                imageManifest=manifest.body,
                imageManifestMediaType=manifest.media_type,
                imageTag=tag.tag,
                imageDigest=digest,
                **self._registry_id(tag.image),
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ImageAlreadyExistsException":
                return  # the tag names this very manifest already: what the revert wanted
            if code in _PUT_REFUSALS:
                raise RevertRefusedError(_PUT_REFUSALS[code]) from error
            raise RegistryUnavailableError(f"PutImage failed: {code or error}") from error
        except BotoCoreError as error:
            raise RegistryUnavailableError(f"PutImage failed: {error}") from error

    @staticmethod
    def _registry_id(image: ImageName) -> dict[str, Any]:
        account, _ = ecr_host_parts(image.registry)
        return {"registryId": account} if account else {}
