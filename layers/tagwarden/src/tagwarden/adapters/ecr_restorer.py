"""The only ECR writer: puts an overwritten protected tag back on its previous manifest (opt-in revert).

Only the tag reverter's role may call `PutImage` (on the configured repository prefixes alone). A revert is
the previous manifest read with `BatchGetImage` (in the media types a tag may name) and written back with
`PutImage`, its exact bytes, its media type and its digest, under the tag: ECR stores no new content, and
the layers are the ones the previous image already had.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tagwarden.adapters.ecr_registry import EcrRegistry, RegistryUnavailableError
from tagwarden.domain.images import ImageName, ecr_host_parts
from tagwarden.domain.revert import IMMUTABLE, Mutability
from tagwarden.domain.tags import TagRef
from tagwarden.ports import RevertRefusedError, StoredManifest

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

# PutImage errors that retrying cannot change, with what they mean for the revert.
_PUT_REFUSALS = {
    "ImageTagAlreadyExistsException": IMMUTABLE,
    "LayersNotFoundException": "the previous image's layers are no longer in the repository",
    "ReferencedImagesNotFoundException": "the previous image index's platform images are no longer in the repository",
    "ImageDigestDoesNotMatchException": "the registry computed another digest for the previous manifest",
    "RepositoryNotFoundException": "the repository no longer exists",
}
# Worth another delivery of the request: throttling, ECR's own failures, timeouts (and, below, any 5xx or 429).
# Anything else ECR answers (AccessDenied, from an attacker's repository policy say; no such repository; a KMS
# refusal) it will answer again: the request is settled NOT_REVERTED at once, and its alert goes out then,
# not after every retry of the queue.
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServerException",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def _transient(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _TRANSIENT_CODES or status >= 500 or status == 429


def _refused(operation: str, error: ClientError) -> RevertRefusedError:
    code = error.response.get("Error", {}).get("Code", "") or "error"
    message = " ".join(str(error.response.get("Error", {}).get("Message", "")).split())[:200]
    return RevertRefusedError(f"ECR refused {operation}: {code}" + (f" ({message})" if message else ""))


@contextmanager
def _revert_errors(operation: str, refusals: Mapping[str, str]) -> Iterator[None]:
    """ECR's answers as the reverter's: a refusal to settle now (RevertRefusedError) or a transient failure
    to retry (RegistryUnavailableError)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in refusals:
            raise RevertRefusedError(refusals[code]) from error
        if _transient(error):
            raise RegistryUnavailableError(f"{operation} failed: {code or error}") from error
        raise _refused(operation, error) from error
    except BotoCoreError as error:
        raise RegistryUnavailableError(f"{operation} failed: {error}") from error
    except RegistryUnavailableError as error:
        # The shared reader's (BatchGetImage): a refusal it did not know as one is not worth a retry either.
        cause = error.__cause__
        if isinstance(cause, ClientError) and not _transient(cause):
            raise _refused(operation, cause) from error
        raise


class EcrTagRestorer(EcrRegistry):
    """The registry as the reverter sees it: mutability, where a tag points, manifests, and PutImage."""

    def mutability(self, image: ImageName) -> Mutability:
        """`imageTagMutability` of the repository (DescribeRepositories)."""
        with _revert_errors("DescribeRepositories", {"RepositoryNotFoundException": "the repository no longer exists"}):
            response = self._client.describe_repositories(
                repositoryNames=[image.repository], **self._registry_id(image)
            )
        setting = response["repositories"][0].get("imageTagMutability", Mutability.MUTABLE.value)
        return Mutability(setting)

    def tag_digest(self, tag: TagRef) -> str | None:
        """The digest the tag names now (BatchGetImage by tag); refusals settle the request."""
        self._registry_id(tag.image)
        with _revert_errors("BatchGetImage", {}):
            return super().tag_digest(tag)

    def manifest(self, image: ImageName, digest: str) -> StoredManifest | None:
        """The manifest's bytes and media type (BatchGetImage by digest); None when ECR no longer holds it."""
        self._registry_id(image)
        with _revert_errors("BatchGetImage", {}):
            found = self._batch_get_image(image, {"imageDigest": digest})
        if found is None or not found.get("imageManifest"):
            return None
        media_type = found.get("imageManifestMediaType") or "application/vnd.docker.distribution.manifest.v2+json"
        return StoredManifest(found["imageManifest"], media_type)

    def put_tag(self, tag: TagRef, digest: str, manifest: StoredManifest) -> None:
        """PutImage of the manifest under the tag; an image already holding the tag counts as done."""
        from botocore.exceptions import ClientError

        registry_id = self._registry_id(tag.image)
        with _revert_errors("PutImage", _PUT_REFUSALS):
            try:
                self._client.put_image(
                    repositoryName=tag.image.repository,
                    imageManifest=manifest.body,
                    imageManifestMediaType=manifest.media_type,
                    imageTag=tag.tag,
                    imageDigest=digest,
                    **registry_id,
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code", "") == "ImageAlreadyExistsException":
                    return  # the tag names this very manifest already: what the revert wanted
                raise

    def _registry_id(self, image: ImageName) -> dict[str, Any]:
        """The registry id of an image of this client's region; any other region is refused (the client would
        read and write the same-named repository of its own region instead)."""
        account, region = ecr_host_parts(image.registry)
        if account is None or region != self._region:
            raise RevertRefusedError(
                f"the registry {image.registry} is not in the reverter's region ({self._region}): not its to write"
            )
        return {"registryId": account}
