"""EKS audit logs from a CloudWatch Logs subscription, turned into image observations.

Deliveries come straight from the stack's own clusters' subscription filters, or, for an organization's
member accounts, as records of the Logs destination's Kinesis stream carrying the same payload. A member's
cluster is named with its account (`domain.workloads.cluster_id`), so clusters named alike stay apart.

Each log event is parsed on its own: a line that is not an audit event (control message, plain text,
truncated or oversized JSON) is skipped and counted, never stopping the batch. Images come only from pod
specs, pod templates and kubelet container statuses, never from annotations such as
`kubectl.kubernetes.io/last-applied-configuration`.

How real traffic is read:
- Server-side dry runs (`?dryRun=All` in `requestURI`, the only marker the audit log has) are not deployments.
- A workload write is read from the object as stored (`responseObject`, logged at RequestResponse); the
  request body is read only when it is a whole object (create, update, or a server-side apply
  configuration): a patch body is a diff, and a JSON patch is an array, which never costs the line.
- What the ledger cannot store is cut, not the line: an over-long `auditID` is shortened with a hash of
  the whole, JSON nested deeper than Python's parser allows is pruned below `MAX_JSON_DEPTH`.
- A kubelet status whose `image` is a bare config id (`sha256:<hex>`, the image was pulled by digest)
  names the image of the pod's spec when the same delivery carries the pod's creation, else no start
  image at all (the alert then names the `imageID` repository), never `docker.io/library/sha256`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsDecode, CloudWatchLogsModel
from aws_lambda_powertools.utilities.parser.models.cloudwatch import CloudWatchLogsData
from aws_lambda_powertools.utilities.parser.models.kinesis import KinesisDataStreamRecord
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tagwarden.domain.deployments import ImageReferenced, ImageRunning, Observation
from tagwarden.domain.images import ImageReference, InvalidReferenceError, is_local_image_id, parse_reference
from tagwarden.domain.workloads import Workload, cluster_id
from tagwarden.events.parsing import InvalidEventError
from tagwarden.events.pod_specs import CONTAINER_LISTS, POD_SPEC_KINDS, PodSpecKind
from tagwarden.observability import logger, metrics

MAX_LINE_BYTES = 1_048_576
# A subscription delivery is at most 1 MiB compressed (a Kinesis record; a Lambda event is smaller) and
# audit JSON compresses about tenfold; 32 MiB leaves room for that and stops a gzip bomb (1,000:1) from
# taking the function's memory. A larger delivery fails alone, with a structured error.
MAX_DELIVERY_BYTES = 32 * 1024 * 1024
# Longer audit ids are kept as a prefix and a hash of the whole: they end up in findings and alerts.
MAX_AUDIT_ID = 128
# Objects nested deeper than this are replaced by null when a line is too deep for `json.loads`; pod
# templates sit at depth 10 (Event > responseObject > spec > jobTemplate > ... > containers[] > image).
MAX_JSON_DEPTH = 64
_LOG_GROUP_RE = re.compile(r"/aws/eks/(?P<cluster>[^/]+)/cluster")
# What a member's delivery may come from: an EKS cluster's audit log group (EKS cluster names: letters,
# digits, - and _, starting with a letter or digit, at most 100).
_EKS_LOG_GROUP_RE = re.compile(r"/aws/eks/[0-9A-Za-z][A-Za-z0-9_-]{0,99}/cluster")
_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_AUDIT_API_VERSIONS = frozenset({"audit.k8s.io/v1", "audit.k8s.io/v1beta1", None})
_WORKLOAD_VERBS = frozenset({"create", "update", "patch", "apply"})
# Verbs whose request body is the whole object (a patch or apply body is only what the writer changed).
_WHOLE_OBJECT_VERBS = frozenset({"create", "update"})
_STATUS_VERBS = frozenset({"patch", "update"})
# The resources whose pod specs are read from the audit log, by `objectRef.resource` (any API group). The
# watcher has never read ReplicationControllers or PodTemplates: adding them changes what it observes, so
# that is left to a change of its own.
_POD_SPECS: dict[str, PodSpecKind] = {
    k.resource: k for k in POD_SPEC_KINDS if k.kind not in ("ReplicationController", "PodTemplate")
}
_STATUS_LISTS = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
_IMAGE_ID_PREFIXES = ("docker-pullable://", "docker://", "containerd://")
# JSON strings (with escapes) and brackets: enough to track nesting without parsing.
_JSON_TOKEN_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class _ObjectRef(BaseModel):
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


class _User(BaseModel):
    username: str | None = None


class _ResponseStatus(BaseModel):
    code: int | None = None


class AuditEvent(BaseModel):
    """The fields of a Kubernetes audit event that Tagwarden reads; the objects stay plain JSON."""

    model_config = ConfigDict(populate_by_name=True)

    api_version: str | None = Field(default=None, alias="apiVersion")
    audit_id: str | None = Field(default=None, alias="auditID")
    stage: str | None = None
    verb: str | None = None
    request_uri: str | None = Field(default=None, alias="requestURI")
    user: _User = Field(default_factory=_User)
    object_ref: _ObjectRef = Field(default_factory=_ObjectRef, alias="objectRef")
    response_status: _ResponseStatus = Field(default_factory=_ResponseStatus, alias="responseStatus")
    # Any JSON: a JSON patch body is an array, and a line must not be lost for the shape of its body.
    request_object: Any = Field(default=None, alias="requestObject")
    response_object: Any = Field(default=None, alias="responseObject")
    stage_timestamp: datetime | None = Field(default=None, alias="stageTimestamp")

    @field_validator("audit_id")
    @classmethod
    def _storable_id(cls, value: str | None) -> str | None:
        # Kept in findings and alerts: cut to a prefix plus a hash of the whole, so distinct ids stay distinct.
        if value is None or len(value) <= MAX_AUDIT_ID:
            return value
        return f"{value[: MAX_AUDIT_ID - 33]}~{hashlib.sha256(value.encode()).hexdigest()[:32]}"

    @field_validator("stage_timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # kube-apiserver writes UTC; a timestamp without a zone is read as UTC, never compared naively.
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @property
    def succeeded(self) -> bool:
        """Only completed requests with a 2xx response changed anything."""
        code = self.response_status.code
        return self.stage == "ResponseComplete" and code is not None and 200 <= code < 300

    @property
    def dry_run(self) -> bool:
        """A server-side dry run (`?dryRun=All`): audited like the real request, but nothing was stored."""
        if not self.request_uri or "dryRun" not in self.request_uri:
            return False
        query = parse_qs(urlsplit(self.request_uri).query)
        return "All" in query.get("dryRun", ())


@dataclass
class AuditBatch:
    """One subscription delivery: its cluster, the observations found, and what was skipped and why."""

    cluster: str
    # The first log event's id: the delivery's correlation id in the logs.
    delivery_id: str | None = None
    observations: list[Observation] = field(default_factory=list)
    lines: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # Lines read after cutting what could not be read or stored (why -> count); they still count.
    repaired: Counter[str] = field(default_factory=Counter)
    invalid_images: list[str] = field(default_factory=list)
    # Images of pod specs in this delivery, by (namespace, pod, container): what a kubelet status that names
    # only a config id was started from.
    spec_images: dict[tuple[str | None, str, str], ImageReference] = field(default_factory=dict)
    # Kubelet observations (index in `observations`, container key) whose start image was a config id.
    unnamed_starts: list[tuple[int, tuple[str | None, str, str]]] = field(default_factory=list)


def cluster_of(log_group: str) -> str:
    """EKS writes audit logs to /aws/eks/<cluster>/cluster; any other group is named as it is."""
    match = _LOG_GROUP_RE.fullmatch(log_group)
    return match["cluster"] if match else log_group


@dataclass(frozen=True, slots=True)
class Home:
    """The stack's own account and region: clusters there keep their bare name (`domain.workloads.cluster_id`)."""

    account: str | None = None
    region: str | None = None


class DeliveryTooLargeError(ValueError):
    """A subscription delivery that decompresses to more than `MAX_DELIVERY_BYTES`."""


def decompress_delivery(payload: bytes) -> bytes:
    """The gzip (or zlib) payload of a subscription delivery, inflated to at most `MAX_DELIVERY_BYTES`.

    Raises `DeliveryTooLargeError` beyond that (without inflating the rest), `zlib.error` for data that is
    not compressed or is cut short.
    """
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, as CloudWatch Logs writes gzip
    data = inflater.decompress(payload, MAX_DELIVERY_BYTES)
    if inflater.unconsumed_tail:
        raise DeliveryTooLargeError(f"delivery inflates to more than {MAX_DELIVERY_BYTES} bytes")
    if not inflater.eof:
        raise zlib.error("incomplete or truncated compressed data")
    return data


class _BoundedCloudWatchLogsData(CloudWatchLogsData):
    """Powertools' `awslogs` model, its data inflated with a bound (`decompress_delivery`)."""

    # Same name as Powertools' validator, which it replaces: that one inflates without a limit.
    @field_validator("decoded_data", mode="before")
    @classmethod
    def prepare_data(cls, value: Any) -> Any:
        try:
            return json.loads(decompress_delivery(base64.b64decode(value)))
        except DeliveryTooLargeError as error:
            raise ValueError(str(error)) from None
        except (binascii.Error, zlib.error, TypeError, ValueError):
            raise ValueError("unable to decompress data") from None


class SubscriptionDelivery(CloudWatchLogsModel):
    """A CloudWatch Logs subscription event as Lambda receives it (Powertools' model, bounded inflation)."""

    awslogs: _BoundedCloudWatchLogsData


def read_batch(envelope: CloudWatchLogsModel, home: Home | None = None) -> AuditBatch:
    """Every observation of one CloudWatch Logs delivery to the function; bad lines are counted in `skipped`."""
    return read_delivery(envelope.awslogs.decoded_data, home)


def read_kinesis_record(record: KinesisDataStreamRecord, home: Home | None = None) -> AuditBatch:
    """Every observation of one delivery through the organization's Logs destination (one Kinesis record).

    CloudWatch Logs writes each subscription delivery of a member account's log group as one record whose
    data is the same gzip-compressed JSON a direct subscription hands to Lambda (base64 undone by the
    parser). A record that is not such a payload, or inflates beyond `MAX_DELIVERY_BYTES`, raises: the
    batch reports that record alone as failed. A delivery from a log group that is not an EKS cluster's
    audit log (`/aws/eks/<name>/cluster`) is skipped (logged and counted): the member template subscribes
    only those, and any other name would become a cluster in the ledger and the alerts.
    """
    problem: str | None = None
    try:
        raw = record.kinesis.data
        if not isinstance(raw, bytes):
            raise TypeError("record data is not bytes")
        data = CloudWatchLogsDecode.model_validate_json(decompress_delivery(raw))
    except DeliveryTooLargeError:
        problem = "TooLarge"
    except (zlib.error, ValueError, TypeError) as error:  # not gzip, not JSON, not a subscription payload
        problem = type(error).__name__
    if problem is not None:
        logger.error(
            "invalid audit delivery record",
            extra={
                "event_id": record.eventID[:200],
                "sequence_number": record.kinesis.sequenceNumber,
                "problem": problem,
                "max_bytes": MAX_DELIVERY_BYTES,
            },
        )
        metrics.add_metric(name="InvalidEvents", unit="Count", value=1)
        raise InvalidEventError(f"Kinesis record {record.eventID[:200]}: not a CloudWatch Logs delivery ({problem})")
    if data.messageType == "DATA_MESSAGE" and not _EKS_LOG_GROUP_RE.fullmatch(data.logGroup):
        logger.warning(
            "audit delivery from a log group that is not an EKS audit log skipped",
            extra={"owner": data.owner[:40], "log_group": data.logGroup[:600], "lines": len(data.logEvents)},
        )
        metrics.add_metric(name="ForeignLogGroupDeliveries", unit="Count", value=1)
        batch = AuditBatch(cluster="-", delivery_id=data.logEvents[0].id if data.logEvents else None)
        batch.lines = len(data.logEvents)
        batch.skipped["not_an_eks_audit_log_group"] = len(data.logEvents)
        return batch
    return read_delivery(data, home)


def read_delivery(data: CloudWatchLogsDecode, home: Home | None = None) -> AuditBatch:
    """Every observation of one decoded subscription delivery; bad lines are counted in `skipped`.

    The payload's `owner` is the account of the log group: with `logGroup`, it names the cluster. The region
    is the stack's: CloudWatch Logs only lets a log group subscribe to a destination in its own region, and
    the function reads only its own region's destination (template.yaml, "Organization").
    """
    delivery_id = data.logEvents[0].id if data.logEvents else None
    if data.messageType != "DATA_MESSAGE":
        # CloudWatch Logs' own health checks (owner "CloudwatchLogs", no log group): no cluster to name.
        batch = AuditBatch(cluster=cluster_of(data.logGroup), delivery_id=delivery_id)
        batch.skipped["control_message"] += 1
        return batch
    if data.owner and not _ACCOUNT_RE.fullmatch(data.owner):
        # CloudWatch Logs names the log group's account; anything else would end up in ledger keys.
        metrics.add_metric(name="InvalidEvents", unit="Count", value=1)
        raise InvalidEventError(f"subscription data owner {data.owner[:40]!r} is not an AWS account id")
    home = home or Home()
    cluster = cluster_id(cluster_of(data.logGroup), data.owner, home.region, home.account)
    batch = AuditBatch(cluster=cluster, delivery_id=delivery_id)
    for log_event in data.logEvents:
        batch.lines += 1
        message = log_event.message
        if not isinstance(message, str):
            batch.skipped["not_text"] += 1
            continue
        reason = _read_line(message, batch)
        if reason is not None:
            batch.skipped[reason] += 1
    _name_config_id_starts(batch)
    return batch


def _name_config_id_starts(batch: AuditBatch) -> None:
    """Give kubelet observations started from a bare config id the image their pod's spec names, if known."""
    for index, container in batch.unnamed_starts:
        spec_image = batch.spec_images.get(container)
        observation = batch.observations[index]
        if spec_image is not None and isinstance(observation, ImageRunning):
            batch.observations[index] = replace(observation, started_from=spec_image)


def _read_line(message: str, batch: AuditBatch) -> str | None:
    """Add the line's observations to the batch; return why it was skipped, if it was."""
    if len(message) > MAX_LINE_BYTES:
        return "oversized"
    try:
        raw = json.loads(message)
    except RecursionError:
        try:
            raw = json.loads(_pruned(message, MAX_JSON_DEPTH))
        except (RecursionError, ValueError):
            return "too_deeply_nested"
        batch.repaired["deep_nesting_pruned"] += 1
    except ValueError:
        return "truncated_json" if message.lstrip().startswith("{") else "not_json"
    if not isinstance(raw, dict) or raw.get("kind", "Event") != "Event":
        return "not_audit_event"
    if raw.get("apiVersion") not in _AUDIT_API_VERSIONS:
        return "unknown_audit_version"
    try:
        event = AuditEvent.model_validate(raw)
    except ValidationError:
        return "invalid_audit_event"
    if not event.succeeded:
        return "not_completed"
    if event.dry_run:
        return "dry_run"
    if event.audit_id is not None and event.audit_id != raw.get("auditID"):
        batch.repaired["audit_id_shortened"] += 1
    found = _observations(event, batch)
    return None if found else "no_images"


def _pruned(message: str, max_depth: int) -> str:
    """The JSON text with every value nested deeper than `max_depth` replaced by null.

    Only reached when `json.loads` gave up on the depth: junk that deep is never where images are.
    """
    parts: list[str] = []
    depth = 0
    copied_to = 0
    cut_from: int | None = None
    for token in _JSON_TOKEN_RE.finditer(message):
        text = token.group()
        if text[0] == '"':
            continue
        if text in "[{":
            depth += 1
            if depth == max_depth + 1:
                cut_from = token.start()
            continue
        if depth == max_depth + 1 and cut_from is not None:
            parts.extend((message[copied_to:cut_from], "null"))
            copied_to, cut_from = token.end(), None
        depth -= 1
    parts.append(message[copied_to:])
    return "".join(parts)


def _observations(event: AuditEvent, batch: AuditBatch) -> bool:
    ref = event.object_ref
    resource, verb = ref.resource, event.verb
    seen_at = event.stage_timestamp or datetime.now(UTC)
    if resource == "pods" and ref.subresource == "status":
        if verb not in _STATUS_VERBS or not (event.user.username or "").startswith("system:node:"):
            return False
        return _kubelet_statuses(event, batch, seen_at)
    # Ephemeral containers (`kubectl debug`) can only be added through their own subresource.
    spec_write = ref.subresource is None or (resource == "pods" and ref.subresource == "ephemeralcontainers")
    if resource not in _POD_SPECS or not spec_write or verb not in _WORKLOAD_VERBS:
        return False
    obj = _stored_object(event)
    if obj is None:
        return False
    spec = _path(obj, _POD_SPECS[resource].path)
    if spec is None:
        return False
    workload = _workload(event, batch.cluster, _POD_SPECS[resource].kind, obj)
    found = False
    for container in _containers(spec, CONTAINER_LISTS):
        reference = _reference(container.get("image"), batch)
        if reference is not None:
            batch.observations.append(ImageReferenced(reference, workload, seen_at))
            found = True
            if resource == "pods" and isinstance(name := container.get("name"), str):
                batch.spec_images[(workload.namespace, workload.name, name)] = reference
    # Through the ephemeralcontainers subresource only the ephemeral containers can change.
    for text in _image_volumes(spec) if ref.subresource is None else ():
        reference = _reference(text, batch)
        if reference is not None:
            batch.observations.append(ImageReferenced(reference, workload, seen_at))
            found = True
    return found


def _image_volumes(spec: dict[str, Any]) -> list[Any]:
    """The references of the spec's image volumes (`volumes[].image.reference`, KEP-4639): OCI images the
    kubelet pulls and mounts read-only, deployed content like a container's image (the webhook judges them
    too). The kubelet reports no digest for them, so only the spec's reference is seen."""
    volumes = spec.get("volumes")
    return [
        volume["image"].get("reference")
        for volume in (volumes if isinstance(volumes, list) else ())
        if isinstance(volume, dict) and isinstance(volume.get("image"), dict)
    ]


def _stored_object(event: AuditEvent) -> dict[str, Any] | None:
    """The object as stored: the response (after defaults, mutation and the patch), else a whole request body.

    A patch or apply request body is only what its writer changed; a server-side apply configuration
    names its kind and carries every field its manager owns, so it still says which images are deployed.
    """
    if isinstance(event.response_object, dict):
        return event.response_object
    body = event.request_object
    if not isinstance(body, dict):
        return None
    if event.verb in _WHOLE_OBJECT_VERBS or ("kind" in body and "apiVersion" in body):
        return body
    return None


def _kubelet_statuses(event: AuditEvent, batch: AuditBatch, seen_at: datetime) -> bool:
    # At level Request (EKS's policy for kubelet status writes) only the patch body is logged.
    obj = event.request_object if isinstance(event.request_object, dict) else event.response_object
    if not isinstance(obj, dict):
        return False
    status = _path(obj, ("status",))
    if status is None:
        return False
    workload = _workload(event, batch.cluster, "Pod", obj)
    found = False
    for container in _containers(status, _STATUS_LISTS):
        running = _image_id(container.get("imageID"), batch)
        if running is None:
            continue
        image = container.get("image")
        started_from = None
        if isinstance(image, str) and is_local_image_id(image):
            # Not a name (`sha256:<config>` would parse as docker.io/library/sha256): look for the pod's spec.
            if isinstance(name := container.get("name"), str):
                batch.unnamed_starts.append((len(batch.observations), (workload.namespace, workload.name, name)))
        else:
            started_from = _reference(image, batch)
        batch.observations.append(ImageRunning(running, started_from, workload, seen_at))
        found = True
    return found


def _workload(event: AuditEvent, cluster: str, kind: str, obj: dict[str, Any]) -> Workload:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    name = event.object_ref.name or metadata.get("name") or metadata.get("generateName") or "(unnamed)"
    namespace = event.object_ref.namespace or metadata.get("namespace")
    username = event.user.username
    return Workload(
        cluster=cluster,
        namespace=str(namespace)[:253] if namespace else None,
        kind=kind,
        name=str(name)[:253],
        user=username[:256] if username else None,
        audit_id=event.audit_id,
    )


def _path(obj: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, dict) else None


def _containers(spec: dict[str, Any], lists: tuple[str, ...]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in lists:
        entries = spec.get(name)
        if isinstance(entries, list):
            found.extend(entry for entry in entries if isinstance(entry, dict))
    return found


def _reference(image: Any, batch: AuditBatch) -> ImageReference | None:
    if not isinstance(image, str) or not image:
        return None
    try:
        return parse_reference(image)
    except InvalidReferenceError:
        batch.invalid_images.append(image[:200])
        return None


def _image_id(image_id: Any, batch: AuditBatch) -> ImageReference | None:
    """The pulled content from `imageID`: `docker-pullable://repo@sha256:…`, `repo@sha256:…`.

    Empty while the container is being created; `docker://sha256:…` and bare `sha256:…` name a local
    image configuration, not registry content, so they cannot be matched to the ledger.
    """
    if not isinstance(image_id, str) or not image_id:
        return None
    for prefix in _IMAGE_ID_PREFIXES:
        if image_id.startswith(prefix):
            image_id = image_id[len(prefix) :]
            break
    if "@" not in image_id:
        batch.skipped["unmatchable_image_id"] += 1
        return None
    reference = _reference(image_id, batch)
    return reference if reference is not None and reference.digest is not None else None
