"""AdmissionReview v1, as kube-apiserver POSTs it to a webhook and reads its answer.

In: `admission.k8s.io/v1` `AdmissionReview` with a `request` (uid, kind, resource, subResource, operation,
namespace, name, object, oldObject, dryRun...). Out: the same `apiVersion`/`kind` with a `response` whose
`uid` is the request's, `allowed`, and optionally `status` (why not), `warnings`, and a base64 JSON Patch
(`patchType: JSONPatch`). Only the images of pod specs are read: a Pod's own spec (its `ephemeralcontainers`
subresource included) and the pod templates of the workload kinds below. Anything else is answered
"allowed" untouched.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tagwarden.domain.admission import (
    ANNOTATION_PREFIX,
    ORIGINAL_IMAGES_ANNOTATION,
    AdmissionSubject,
    AdmissionVerdict,
    ImageSlot,
)
from tagwarden.events.parsing import describe_validation_error
from tagwarden.events.pod_specs import CONTAINER_LISTS, EPHEMERAL_CONTAINERS, POD_SPEC_BY_KIND

API_VERSION = "admission.k8s.io/v1"
EPHEMERAL_SUBRESOURCE = "ephemeralcontainers"
_JUDGED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
# The largest review the API server sends: an UPDATE carries the object and its old version, and the API
# server refuses request bodies above 3 MiB (`MaxRequestBodyBytes: 3 * 1024 * 1024`, k8s.io/apiserver
# pkg/server/config.go; etcd stores at most 1.5 MiB per object), so 2 x 3 MiB plus the envelope.
MAX_REVIEW_BYTES = 6 * 1024 * 1024 + 512 * 1024


class MalformedReviewError(ValueError):
    """The body is not an AdmissionReview v1 request; the message says what is wrong (HTTP 400)."""


class GroupVersionKind(BaseModel):
    """`metav1.GroupVersionKind` (the core group is the empty string)."""

    group: str = ""
    version: str
    kind: str


class GroupVersionResource(BaseModel):
    """`metav1.GroupVersionResource`."""

    group: str = ""
    version: str
    resource: str


class AdmissionRequest(BaseModel):
    """The fields of `AdmissionRequest` the webhook reads; the objects stay plain JSON."""

    model_config = ConfigDict(populate_by_name=True)

    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource
    sub_resource: str = Field(default="", alias="subResource")
    name: str = ""
    namespace: str = ""
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = Field(default=None, alias="oldObject")
    dry_run: bool = Field(default=False, alias="dryRun")


class AdmissionReview(BaseModel):
    """`admission.k8s.io/v1` `AdmissionReview` carrying a request."""

    model_config = ConfigDict(populate_by_name=True)

    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


def parse_review(body: bytes) -> AdmissionReview:
    """Validate a request body; raise MalformedReviewError naming what is wrong (never echoing the input)."""
    if len(body) > MAX_REVIEW_BYTES:
        raise MalformedReviewError(f"request body of {len(body)} bytes is larger than {MAX_REVIEW_BYTES}")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise MalformedReviewError(f"request body is not JSON: {str(error)[:200]}") from None
    if not isinstance(document, dict):
        raise MalformedReviewError("request body is not a JSON object")
    try:
        return AdmissionReview.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(f"{p['field']}: {p['problem']}" for p in describe_validation_error(error))
        raise MalformedReviewError(f"not an {API_VERSION} AdmissionReview request: {problems}") from None


def subject_of(request: AdmissionRequest, pin_templates: bool) -> AdmissionSubject | None:
    """The object's images and where they are; None when nothing in it is judged (other kinds, operations,
    subresources, or no object)."""
    located = POD_SPEC_BY_KIND.get((request.kind.group, request.kind.kind))
    if located is None or request.operation not in _JUDGED_OPERATIONS or not isinstance(request.object, dict):
        return None
    pod = request.kind.kind == "Pod"
    if request.sub_resource not in ("", EPHEMERAL_SUBRESOURCE) or (request.sub_resource and not pod):
        return None
    spec_path = located.path
    lists = (EPHEMERAL_CONTAINERS,) if request.sub_resource else CONTAINER_LISTS
    # Image volumes are judged with the containers; through the ephemeralcontainers subresource only the
    # ephemeral containers can change.
    volumes = not request.sub_resource
    old = _images(request.old_object, spec_path, lists, volumes) if request.operation == "UPDATE" else {}
    # An UPDATE is judged on the images it changes (see domain.admission).
    slots = tuple(
        ImageSlot(path, name, text, template=not pod, changed=old.get(path) != (name, text, volume), volume=volume)
        for path, (name, text, volume) in _images(request.object, spec_path, lists, volumes).items()
    )
    metadata = request.object.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise MalformedReviewError("request.object.metadata is not a JSON object")
    annotations = metadata.get("annotations")
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict) or not all(isinstance(value, str) for value in annotations.values()):
        raise MalformedReviewError("request.object.metadata.annotations is not a map of strings")
    # A Job's pod template is immutable: an UPDATE that changed it would be refused by the API server.
    job_update = request.kind.kind == "Job" and request.operation == "UPDATE"
    pinnable = pod or (pin_templates and not job_update)
    return AdmissionSubject(
        namespace=request.namespace,
        kind=request.kind.kind,
        # Controllers create pods with only `generateName` (the name is made after admission).
        name=request.name or str(metadata.get("name") or metadata.get("generateName") or ""),
        operation=request.operation,
        slots=slots,
        pinnable=pinnable,
        # Through the ephemeralcontainers subresource only those containers are stored; metadata is not.
        annotated=pinnable and not request.sub_resource,
        incoming_annotations=frozenset(k for k in annotations if str(k).startswith(ANNOTATION_PREFIX)),
        claimed_originals=_claimed_originals(annotations.get(ORIGINAL_IMAGES_ANNOTATION)),
    )


def _images(
    obj: Mapping[str, Any] | None, spec_path: Sequence[str], lists: Sequence[str], volumes: bool = True
) -> dict[str, tuple[str, str | None, bool]]:
    """JSON pointer of each image field -> (container or volume name, image text or None if not a string,
    whether it is an image volume's `image.reference`).

    Containers and image volumes without an image are left out (nothing to pull; the API server's
    validation decides).
    """
    node: Any = obj
    for part in spec_path:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return {}
    found: dict[str, tuple[str, str | None, bool]] = {}
    for list_name in lists:
        containers = node.get(list_name)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if not isinstance(container, dict) or container.get("image") in (None, ""):
                continue
            image = container["image"]
            path = "/" + "/".join((*spec_path, list_name, str(index), "image"))
            found[path] = (str(container.get("name", index)), image if isinstance(image, str) else None, False)
    volume_list = node.get("volumes") if volumes else None
    for index, volume in enumerate(volume_list if isinstance(volume_list, list) else ()):
        # `image` volumes (KEP-4639): an OCI image mounted read-only, pulled by the kubelet like a container's.
        source = volume.get("image") if isinstance(volume, dict) else None
        if not isinstance(source, dict) or source.get("reference") in (None, ""):
            continue
        reference = source["reference"]
        path = "/" + "/".join((*spec_path, "volumes", str(index), "image", "reference"))
        found[path] = (str(volume.get("name", index)), reference if isinstance(reference, str) else None, True)
    return found


def _claimed_originals(value: object) -> dict[str, str]:
    """What an incoming original-images annotation claims (anything unreadable claims nothing)."""
    if not isinstance(value, str):
        return {}
    try:
        claimed = json.loads(value)
    except ValueError:
        return {}
    if not isinstance(claimed, dict):
        return {}
    return {path: text for path, text in claimed.items() if isinstance(path, str) and isinstance(text, str)}


def json_patch(request: AdmissionRequest, subject: AdmissionSubject, verdict: AdmissionVerdict) -> list[dict[str, Any]]:
    """RFC 6902 operations: pinned images replaced, `tagwarden.io/*` annotations set to what the verdict says.

    Annotations are left alone when they already say it (a reinvocation changes nothing) or when the
    object's annotations are not ours to write.
    """
    operations: list[dict[str, Any]] = [{"op": "replace", "path": path, "value": image} for path, image in verdict.pins]
    if verdict.originals is None or not subject.annotated:
        return operations
    wanted: dict[str, str] = {}
    if verdict.originals:
        wanted[ORIGINAL_IMAGES_ANNOTATION] = json.dumps(dict(sorted(verdict.originals.items())), separators=(",", ":"))
    obj = request.object or {}
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else None
    annotations = metadata.get("annotations") if metadata is not None else None
    present = {k: v for k, v in (annotations or {}).items() if k in subject.incoming_annotations}
    if present == wanted:
        return operations
    if metadata is None:
        if wanted:
            operations.append({"op": "add", "path": "/metadata", "value": {"annotations": wanted}})
        return operations
    if not isinstance(annotations, dict):
        if wanted:
            operations.append({"op": "add", "path": "/metadata/annotations", "value": wanted})
        return operations
    for name in sorted(present):
        if name not in wanted:
            operations.append({"op": "remove", "path": f"/metadata/annotations/{_escape(name)}"})
    for name, value in wanted.items():
        if present.get(name) != value:
            operations.append({"op": "add", "path": f"/metadata/annotations/{_escape(name)}", "value": value})
    return operations


def _escape(name: str) -> str:
    """A JSON pointer reference token (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def review_response(
    uid: str, verdict: AdmissionVerdict | None, patch: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The AdmissionReview the API server reads back (None: allowed untouched)."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict is None or verdict.allowed}
    if verdict is not None:
        if not verdict.allowed:
            response["status"] = {"code": 403, "reason": "Forbidden", "message": verdict.message}
        if verdict.warnings:
            response["warnings"] = list(verdict.warnings)
        if patch and verdict.allowed:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(list(patch), separators=(",", ":")).encode()).decode()
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}
