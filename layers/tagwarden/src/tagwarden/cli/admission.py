"""`tagwarden admission manifests`: the Kubernetes objects that install the admission webhook (issue 11).

The webhook's server is `python -m tagwarden.admission` (its own package); this module only describes how it
runs in a cluster: namespace, service account, Deployment, PodDisruptionBudget, Service, NetworkPolicy, TLS
material (made here with `cryptography`, or a cert-manager Certificate), the MutatingWebhookConfiguration with
one entry per mode, and optionally a ValidatingAdmissionPolicy that keeps `enforce` namespaces digest-only
should the webhook configuration be removed. Everything environment-specific comes from the deployed stack
(`--stack-name`): the ledger table, the tag policy parameters, the image repository and the Pod Identity role.

`build_manifests` is pure (settings and TLS material in, objects out), so the tests validate exactly what the
command prints.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tagwarden.cli.errors import exit_codes, usage_error
from tagwarden.cli.yaml_text import dump_document, dump_documents

if TYPE_CHECKING:
    from tagwarden.cli.runtime import Runtime

# --- the contract with the server (tagwarden.admission) and its tests -------------------------------------

NAMESPACE = "tagwarden"
NAME = "tagwarden-admission"  # service account, Service, Deployment, and so the DNS name <NAME>.<NAMESPACE>.svc
SERVICE_ACCOUNT = NAME
TLS_SECRET = f"{NAME}-tls"
SERVER_PORT = 8443
TLS_DIR = "/tls"
# The image's ENTRYPOINT (admission/Dockerfile) and the command the server tests start: one list, checked
# against the Dockerfile by tests/integration/test_admission_image.py.
SERVER_COMMAND = (
    "python",
    "-m",
    "tagwarden.admission",
    "--port",
    str(SERVER_PORT),
    "--tls-cert",
    f"{TLS_DIR}/tls.crt",
    "--tls-key",
    f"{TLS_DIR}/tls.key",
)
MODE_LABEL = "tagwarden.io/mode"
MODES = ("enforce", "warn", "off")
WEBHOOK_MODES = ("enforce", "warn")  # `off` has no entry: its namespaces match neither selector
# Never admitted through the webhook: the control plane's own namespaces and the webhook's (its pods must be
# able to start while it is down, or failurePolicy Fail would lock it out of its own recovery).
EXEMPT_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", NAMESPACE)
# The API server waits timeoutSeconds for an answer; the server's ledger reads give up well before, so it
# always answers (denying in enforce, warning in warn) rather than letting the API server time out.
WEBHOOK_TIMEOUT_SECONDS = 5
LEDGER_TIMEOUT_SECONDS = 2
MEMORY_LIMIT = "640Mi"
# EKS Pod Identity: the agent (an add-on DaemonSet) serves credentials on these link-local addresses, port 80.
POD_IDENTITY_AGENT = (("169.254.170.23/32", 80), ("fd00:ec2::23/128", 80))
POD_IDENTITY_ADDON = "eks-pod-identity-agent"

# Stack outputs the template's "Admission webhook (issue 11)" block declares.
ROLE_OUTPUT = "AdmissionWebhookRoleArn"
REPOSITORY_OUTPUT = "AdmissionImageRepositoryUri"
TABLE_ARN_OUTPUT = "LedgerTableArn"
CLUSTERS_PARAMETER = "EksClusterNames"
MONITORED_ACCOUNTS_PARAMETER = "MonitoredAccounts"

LABELS = {
    "app.kubernetes.io/name": NAME,
    "app.kubernetes.io/component": "admission-webhook",
    "app.kubernetes.io/part-of": "tagwarden",
}
SELECTOR = {"app.kubernetes.io/name": NAME}
RUN_AS = 10001  # the image's USER (admission/Dockerfile)
DIGEST_PATTERN = "@sha256:[0-9a-f]{64}$"
# RFC 1123 label: what a namespace's name may be.
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class TlsMaterial:
    """PEM text: the CA that signs the serving certificate, the certificate, its private key."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    not_after: dt.datetime


@dataclass(frozen=True)
class ManifestSettings:
    """What the objects depend on: the image, the modes, the server's environment, the TLS choice."""

    image: str
    environment: Mapping[str, str]
    default_mode: str = "warn"
    replicas: int = 2
    cert_manager: bool = False
    fallback_policy: bool = False
    pin_templates: bool = False
    # `Ignore` (the default): while the webhook is unreachable, pods of warn namespaces are admitted unpinned
    # (warn never refuses, so an outage must not either); `Fail` makes them wait for the webhook.
    warn_failure_policy: str = "Ignore"
    # Namespaces exempt besides EXEMPT_NAMESPACES (infrastructure that must start while the webhook is down).
    exempt_namespaces: tuple[str, ...] = ()
    # The ECR accounts whose registries the webhook judges (the fallback policy checks only their images).
    judged_accounts: tuple[str, ...] = ()
    # Groups allowed to set or change a namespace's mode label (empty: no guard policy).
    mode_admins: tuple[str, ...] = ()
    # Extra CA certificates trusted next to the new one (the previous caBundle, during a rotation).
    trusted_ca_pem: bytes = b""
    tls: TlsMaterial | None = None


def service_hosts() -> tuple[str, ...]:
    """The names the API server and in-cluster clients use for the Service (the certificate's SANs)."""
    return (
        NAME,
        f"{NAME}.{NAMESPACE}",
        f"{NAME}.{NAMESPACE}.svc",
        f"{NAME}.{NAMESPACE}.svc.cluster.local",
    )


# --- TLS --------------------------------------------------------------------------------------------------


def make_tls_material(now: dt.datetime, days: int) -> TlsMaterial:
    """A fresh CA and a serving certificate for the Service's names, both valid for `days`.

    The CA's private key never leaves this function: nothing can sign another certificate the webhook
    configuration would trust. Rotation makes a new CA and keeps the old one in the caBundle for the change
    (`--trust-ca`), see the README.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    start = now - dt.timedelta(minutes=5)  # nodes whose clocks run a little behind still accept it
    end = now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tagwarden"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{NAME} CA {now:%Y-%m-%dT%H:%M:%SZ}"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    hosts = service_hosts()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[2])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return TlsMaterial(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        not_after=end,
    )


def read_trusted_cas(path: Path) -> bytes:
    """The CA certificates of a PEM file (e.g. the caBundle in use, decoded), checked to be certificates."""
    from cryptography import x509

    try:
        text = path.read_bytes()
    except OSError as error:
        raise usage_error(f"--trust-ca: cannot read {path}: {error.strerror}") from None
    if text.lstrip().startswith(b"LS0t"):  # a caBundle copied as it is (base64 of "-----BEGIN")
        text = base64.b64decode(text)
    try:
        certificates = x509.load_pem_x509_certificates(text)
    except ValueError:
        raise usage_error(f"--trust-ca: {path} holds no PEM certificate") from None
    from cryptography.hazmat.primitives import serialization

    return b"".join(certificate.public_bytes(serialization.Encoding.PEM) for certificate in certificates)


# --- the objects ------------------------------------------------------------------------------------------


def _metadata(name: str, *, namespaced: bool = True, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespaced:
        metadata["namespace"] = NAMESPACE
    metadata["labels"] = dict(LABELS)
    metadata.update(extra)
    return metadata


def namespace_selector(mode: str, default_mode: str, exempt: Sequence[str] = ()) -> dict[str, Any]:
    """The namespaces a mode's webhook entry (or the fallback policy's binding) applies to.

    A namespace labelled with the mode gets it; an unlabelled one, or one whose label is not a known mode,
    gets the default mode (so a typo in the label never switches a namespace off). Exempt namespaces never.
    """
    others = [other for other in MODES if other != mode]
    if mode == default_mode:
        expression = {"key": MODE_LABEL, "operator": "NotIn", "values": others}
    else:
        expression = {"key": MODE_LABEL, "operator": "In", "values": [mode]}
    return {
        "matchExpressions": [
            expression,
            # Set on every namespace by the API server (1.22+): cannot be forged by labelling.
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": [*EXEMPT_NAMESPACES, *(name for name in exempt if name not in EXEMPT_NAMESPACES)],
            },
        ]
    }


WEBHOOK_RULES = (
    # Pods, and `kubectl debug`'s ephemeral containers (a subresource of their own).
    {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "pods/ephemeralcontainers"]},
    # The kinds that hold a pod template: warned about (or pinned with --pin-templates) before any pod exists.
    {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["replicationcontrollers", "podtemplates"]},
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
    },
    {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"]},
)


def _webhook(mode: str, settings: ManifestSettings, ca_bundle: str | None) -> dict[str, Any]:
    client_config: dict[str, Any] = {
        "service": {"namespace": NAMESPACE, "name": NAME, "path": f"/admit/{mode}", "port": 443},
    }
    if ca_bundle is not None:
        client_config["caBundle"] = ca_bundle
    return {
        "name": f"{mode}.admission.tagwarden.io",
        "clientConfig": client_config,
        "rules": [{**rule, "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"} for rule in WEBHOOK_RULES],
        "namespaceSelector": namespace_selector(mode, settings.default_mode, settings.exempt_namespaces),
        "failurePolicy": settings.warn_failure_policy if mode == "warn" else "Fail",
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS,
        "admissionReviewVersions": ["v1"],
        # Another webhook may add a container after this one ran: run again, the server re-verifies pins.
        "reinvocationPolicy": "IfNeeded",
    }


def _container(settings: ManifestSettings) -> dict[str, Any]:
    environment = {
        **settings.environment,
        "ADMISSION_PIN_TEMPLATES": "true" if settings.pin_templates else "false",
    }

    def probe(path: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "https", "scheme": "HTTPS"},
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": failures,
        }

    return {
        "name": "server",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        # No command or args: the image's ENTRYPOINT is SERVER_COMMAND (the tests check both).
        "ports": [{"name": "https", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "env": [{"name": name, "value": value} for name, value in sorted(environment.items())],
        "resources": {
            # Measured peak: 75 MiB idle, 245 MiB for one review of the largest size the API server sends
            # (6.5 MiB of small JSON objects), 422 MiB for the two the server's body budget lets in at once.
            "requests": {"cpu": "100m", "memory": "192Mi"},
            "limits": {"cpu": "1", "memory": MEMORY_LIMIT},
        },
        "livenessProbe": probe("/healthz", 10, 2, 3),
        # /readyz says the server is configured and serving, never the ledger's state: a ledger outage must
        # not take every endpoint away (failurePolicy would then refuse the pods of warn namespaces too).
        "readinessProbe": probe("/readyz", 10, 2, 2),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir: the root file system is read-only
        ],
    }


def _deployment(settings: ManifestSettings) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(NAME),
        "spec": {
            "replicas": settings.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": dict(SELECTOR)},
            # A rollout never takes a serving replica away first: pod creation depends on this service.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    # Pod creation waits on this service (failurePolicy Fail): evicted last under node pressure.
                    "priorityClassName": "system-cluster-critical",
                    # The server never calls the Kubernetes API. (Pod Identity projects its own token.)
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    # Preferred, not required: a one-node cluster (or a surge during a rollout on two nodes)
                    # must still be able to schedule every replica.
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "labelSelector": {"matchLabels": dict(SELECTOR)},
                                        "topologyKey": "kubernetes.io/hostname",
                                    },
                                }
                            ]
                        }
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": dict(SELECTOR)},
                        }
                    ],
                    "terminationGracePeriodSeconds": 30,
                    "containers": [_container(settings)],
                    "volumes": [
                        {"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o440}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                    ],
                },
            },
        },
    }


def _network_policy() -> dict[str, Any]:
    egress: list[dict[str, Any]] = [
        # DynamoDB (and the STS/KMS endpoints the SDK may reach) over HTTPS.
        {"ports": [{"protocol": "TCP", "port": 443}]},
        # Cluster DNS, wherever it runs.
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]
    egress.extend(
        {"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"protocol": "TCP", "port": port}]}
        for cidr, port in POD_IDENTITY_AGENT
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(NAME),
        "spec": {
            "podSelector": {"matchLabels": dict(SELECTOR)},
            "policyTypes": ["Ingress", "Egress"],
            # The API server reaches the pods from the control plane's network interfaces, whose addresses
            # no policy can name in advance: the port is open to any source, and TLS decides who talks.
            "ingress": [{"ports": [{"protocol": "TCP", "port": SERVER_PORT}]}],
            "egress": egress,
        },
    }


def judged_image_pattern(accounts: Sequence[str]) -> str:
    """RE2 matching the images the webhook judges by registry: the ECR hosts (every region, FIPS and dual-stack
    endpoints, any case, an explicit :443) of the monitored accounts. EKS add-on images come from AWS's own
    accounts, never matched; EXTRA_MONITORED_REGISTRIES are not covered by the fallback policy."""
    listed = "|".join(sorted({a for a in accounts if a.isdigit() and len(a) == 12}))
    return (
        rf"(?i)^({listed})\.dkr[.-]ecr(-fips)?\.[a-z0-9-]+\.(amazonaws\.com(\.cn)?|on\.aws|c2s\.ic\.gov|"
        rf"sc2s\.sgov\.gov)\.?(:0*443)?/"
    )


def _fallback_policy(default_mode: str, accounts: Sequence[str], exempt: Sequence[str]) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy (CEL, in the API server itself) requiring digests in enforce namespaces, for
    the images the webhook would judge (monitored ECR accounts): containers, init containers, image volumes,
    and, through the ephemeralcontainers subresource, the ephemeral containers that request adds or changes."""
    judged = judged_image_pattern(accounts)

    def ok(image: str) -> str:
        return f"(!{image}.matches('{judged}') || {image}.matches('{DIGEST_PATTERN}'))"

    def all_pinned(field_name: str) -> str:
        check = f"object.spec.{field_name}.all(c, {ok('c.image')})"
        return check if field_name == "containers" else f"!has(object.spec.{field_name}) || {check}"

    def images(obj: str, field_name: str) -> str:
        listed = f"{obj}.spec.{field_name}.map(c, c.image)"
        return listed if field_name == "containers" else f"(has({obj}.spec.{field_name}) ? {listed} : [])"

    # An ephemeral container already in the pod is not this request's doing (they cannot be removed).
    new_ephemeral = (
        "!has(object.spec.ephemeralContainers) || object.spec.ephemeralContainers.all(c, "
        "(request.operation == 'UPDATE' && has(oldObject.spec.ephemeralContainers) && "
        "oldObject.spec.ephemeralContainers.exists(o, o.name == c.name && o.image == c.image)) || "
        f"{ok('c.image')})"
    )
    volumes = (
        "!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.image) || !has(v.image.reference) || "
        f"{ok('v.image.reference')})"
    )
    name = "tagwarden-require-digests"
    message = "image must name a digest (@sha256:...) in a Tagwarden enforce namespace"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": _metadata(name, namespaced=False),
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods", "pods/ephemeralcontainers"],
                    }
                ]
            },
            # An update that leaves the images alone (labels, annotations, finalizers on a pod created before
            # the webhook was installed) is not this policy's business; new and changed images are. (A pod's
            # volumes cannot change after its creation.)
            "matchConditions": [
                {
                    "name": "images-set-or-changed",
                    "expression": (
                        "request.operation == 'CREATE' || request.subResource == 'ephemeralcontainers' || "
                        f"{images('object', 'containers')} != {images('oldObject', 'containers')} || "
                        f"{images('object', 'initContainers')} != {images('oldObject', 'initContainers')}"
                    ),
                }
            ],
            "validations": [
                *(
                    {"expression": all_pinned(field_name), "message": f"every {label} {message}", "reason": "Forbidden"}
                    for field_name, label in (("containers", "container"), ("initContainers", "init container"))
                ),
                {
                    "expression": new_ephemeral,
                    "message": f"every new ephemeral container {message}",
                    "reason": "Forbidden",
                },
                {"expression": volumes, "message": f"every image volume's {message}", "reason": "Forbidden"},
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": _metadata(name, namespaced=False),
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": namespace_selector("enforce", default_mode, exempt)},
        },
    }
    return [policy, binding]


def _mode_guard(admins: Sequence[str]) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy letting only members of `admins` set, change or remove a namespace's
    `tagwarden.io/mode` label (creating a namespace with it included): whoever may create or patch namespaces
    could otherwise switch a namespace to `off` and deploy what the webhook would refuse."""

    def mode(obj: str) -> str:
        return (
            f"(has({obj}.metadata.labels) && '{MODE_LABEL}' in {obj}.metadata.labels ? "
            f"{obj}.metadata.labels['{MODE_LABEL}'] : '')"
        )

    groups = ", ".join(f"'{group}'" for group in admins)
    name = "tagwarden-guard-mode-label"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": _metadata(name, namespaced=False),
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["namespaces"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": (
                        f"(request.operation == 'CREATE' ? {mode('object')} == '' : "
                        f"{mode('object')} == {mode('oldObject')}) || "
                        f"(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in [{groups}]))"
                    ),
                    "message": f"only members of {', '.join(admins)} may set or change the {MODE_LABEL} label",
                    "reason": "Forbidden",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": _metadata(name, namespaced=False),
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def _cert_manager_objects(days: int) -> list[dict[str, Any]]:
    """A self-signed root, a CA Issuer on it, and the serving Certificate into TLS_SECRET (cert-manager v1)."""
    hours = f"{days * 24}h"
    return [
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": _metadata(f"{NAME}-selfsigned"),
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": _metadata(f"{NAME}-ca"),
            "spec": {
                "isCA": True,
                "commonName": f"{NAME} CA",
                "secretName": f"{NAME}-ca",
                "duration": hours,
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": f"{NAME}-selfsigned", "kind": "Issuer", "group": "cert-manager.io"},
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": _metadata(f"{NAME}-ca"),
            "spec": {"ca": {"secretName": f"{NAME}-ca"}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": _metadata(f"{NAME}-serving"),
            "spec": {
                "secretName": TLS_SECRET,
                "dnsNames": list(service_hosts()),
                "duration": "2160h",
                "renewBefore": "720h",
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "usages": ["digital signature", "server auth"],
                "issuerRef": {"name": f"{NAME}-ca", "kind": "Issuer", "group": "cert-manager.io"},
            },
        },
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_manifests(settings: ManifestSettings, cert_manager_days: int = 3650) -> list[dict[str, Any]]:
    """Every object of the installation, in the order `kubectl apply` should create them."""
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                **LABELS,
                # Never admitted through its own webhook; and the pods satisfy the restricted profile.
                MODE_LABEL: "off",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }
    objects: list[dict[str, Any]] = [
        namespace,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(SERVICE_ACCOUNT),
            "automountServiceAccountToken": False,
        },
    ]
    webhook_metadata = _metadata(NAME, namespaced=False)
    ca_bundle: str | None
    if settings.cert_manager:
        objects.extend(_cert_manager_objects(cert_manager_days))
        # cert-manager's CA injector fills every entry's caBundle from the serving Certificate's CA.
        webhook_metadata["annotations"] = {"cert-manager.io/inject-ca-from": f"{NAMESPACE}/{NAME}-serving"}
        ca_bundle = None
    else:
        if settings.tls is None:
            raise ValueError("TLS material is needed without cert-manager")
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": _metadata(TLS_SECRET),
                "type": "kubernetes.io/tls",
                "data": {
                    "tls.crt": _b64(settings.tls.cert_pem),
                    "tls.key": _b64(settings.tls.key_pem),
                    "ca.crt": _b64(settings.tls.ca_pem),
                },
            }
        )
        ca_bundle = _b64(settings.tls.ca_pem + settings.trusted_ca_pem)
    objects.extend(
        [
            _deployment(settings),
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _metadata(NAME),
                "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(SELECTOR)}},
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _metadata(NAME),
                "spec": {
                    "type": "ClusterIP",
                    "selector": dict(SELECTOR),
                    "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}],
                },
            },
            _network_policy(),
        ]
    )
    if settings.fallback_policy:
        objects.extend(_fallback_policy(settings.default_mode, settings.judged_accounts, settings.exempt_namespaces))
    if settings.mode_admins:
        objects.extend(_mode_guard(settings.mode_admins))
    # Last: the API server starts calling the webhook as soon as this exists.
    objects.append(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": webhook_metadata,
            "webhooks": [_webhook(mode, settings, ca_bundle) for mode in WEBHOOK_MODES],
        }
    )
    return objects


def file_name(index: int, obj: Mapping[str, Any]) -> str:
    """`--output` file of an object: numbered in apply order, e.g. `03-deployment-tagwarden-admission.yaml`."""
    return f"{index:02d}-{str(obj['kind']).lower()}-{obj['metadata']['name']}.yaml"


# --- from the stack ---------------------------------------------------------------------------------------


def server_environment(outputs: Mapping[str, str], parameters: Mapping[str, str], region: str | None) -> dict[str, str]:
    """The server's environment from the stack: the table, region, the functions' policy variables, accounts.

    Raises:
        CliError: the stack lacks the ledger table outputs (not a Tagwarden stack).
    """
    from tagwarden.adapters.stack_outputs import LEDGER_TABLE_OUTPUT, policy_variables

    table = outputs.get(LEDGER_TABLE_OUTPUT)
    table_arn = outputs.get(TABLE_ARN_OUTPUT, "")
    arn_parts = table_arn.split(":")
    if not table or len(arn_parts) < 6:
        raise usage_error(
            f"the stack has no {LEDGER_TABLE_OUTPUT} and {TABLE_ARN_OUTPUT} outputs: not a Tagwarden stack?"
        )
    table_region, account = arn_parts[3], arn_parts[4]
    region = table_region or region
    if not region:
        raise usage_error(f"the stack's {TABLE_ARN_OUTPUT} names no region: pass --region")
    # As the template gives the audit watcher: the stack's own account first, then MonitoredAccounts.
    accounts = [account, *(a.strip() for a in parameters.get(MONITORED_ACCOUNTS_PARAMETER, "").split(","))]
    return {
        "LEDGER_TABLE_NAME": table,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        **policy_variables(parameters),
        "MONITORED_ACCOUNTS": ",".join(a for a in accounts if a),
        "ADMISSION_EXEMPT_NAMESPACES": ",".join(EXEMPT_NAMESPACES),
        "ADMISSION_LEDGER_TIMEOUT_SECONDS": str(LEDGER_TIMEOUT_SECONDS),
        "POWERTOOLS_SERVICE_NAME": "admission-webhook",
        "POWERTOOLS_METRICS_NAMESPACE": "Tagwarden",
    }


def cluster_names(parameters: Mapping[str, str]) -> list[str]:
    """The stack's EKS clusters (its EksClusterNames parameter), empty entries dropped."""
    return [name.strip() for name in parameters.get(CLUSTERS_PARAMETER, "").split(",") if name.strip()]


def pod_identity_notes(outputs: Mapping[str, str], parameters: Mapping[str, str], region: str) -> list[str]:
    """What the pods need to read the ledger: the association the stack made, and the agent add-on per cluster."""
    clusters = cluster_names(parameters)
    role = outputs.get(ROLE_OUTPUT)
    if role is None or not clusters:
        return [
            f"warning: the stack has no {ROLE_OUTPUT} output (EksClusterNames is empty): no Pod Identity association "
            f"gives {NAMESPACE}/{SERVICE_ACCOUNT} a role, so the webhook cannot read the ledger. Deploy the stack "
            "with EksClusterNames set to the clusters you install it in."
        ]
    notes = [
        f"Pod Identity: the stack associates {role} with service account {NAMESPACE}/{SERVICE_ACCOUNT} in "
        f"{', '.join(clusters)}. Each cluster needs the EKS Pod Identity Agent add-on before the pods start:"
    ]
    notes.extend(
        f"  aws eks create-addon --region {region} --cluster-name {cluster} --addon-name {POD_IDENTITY_ADDON}"
        for cluster in clusters
    )
    return notes


# --- the command ------------------------------------------------------------------------------------------

admission_app = typer.Typer(
    name="admission",
    help="The admission webhook (pins tags to their scanned digests at pod creation): its Kubernetes objects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _runtime(ctx: typer.Context) -> Runtime:
    from tagwarden.cli.runtime import Runtime

    runtime = ctx.find_object(Runtime)
    if runtime is None:  # pragma: no cover - the global options callback runs first
        raise RuntimeError("no Runtime on the context: the global options callback did not run")
    return runtime


def _image(text: str | None, outputs: Mapping[str, str], stack_name: str) -> str:
    """`--image` checked, or the stack's repository at this package's version (what `make image` pushes)."""
    from tagwarden import __version__
    from tagwarden.domain.images import InvalidReferenceError, parse_reference

    if text is None:
        repository = outputs.get(REPOSITORY_OUTPUT)
        if not repository:
            raise usage_error(
                f"stack {stack_name!r} has no {REPOSITORY_OUTPUT} output (it is created with EksClusterNames): "
                "deploy it with your clusters, or pass --image"
            )
        return f"{repository}:{__version__}"
    try:
        reference = parse_reference(text)
    except InvalidReferenceError as error:
        raise usage_error(f"--image: {error}") from None
    # parse_reference reads a missing tag as `latest`: the text itself must name a tag or a digest.
    last = text.rsplit("/", 1)[-1]
    if reference.digest is None and ":" not in last:
        raise usage_error(f"--image: {text!r} names neither a tag nor a digest (write :TAG or @sha256:...)")
    return text


@admission_app.command()
def manifests(
    ctx: typer.Context,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="URI",
            help="The webhook's image (default: the stack's AdmissionImageRepositoryUri at this version's tag; "
            "`make image` prints the pushed one by digest).",
        ),
    ] = None,
    default_mode: Annotated[
        str,
        typer.Option(
            "--default-mode",
            metavar="MODE",
            help=f"Mode of namespaces without a `{MODE_LABEL}` label (or with an unknown value): warn, enforce or off.",
        ),
    ] = "warn",
    cert_manager: Annotated[
        bool,
        typer.Option(
            "--cert-manager", help="TLS from cert-manager (Issuers and Certificate, CA injected) instead of a Secret."
        ),
    ] = False,
    pin_templates: Annotated[
        bool,
        typer.Option(
            "--pin-templates",
            help="Also pin workload pod templates (GitOps tools then need ignoreDifferences; see the README).",
        ),
    ] = False,
    fallback_policy: Annotated[
        bool,
        typer.Option(
            "--fallback-policy",
            help="Add a ValidatingAdmissionPolicy requiring digests in enforce namespaces (Kubernetes 1.30+).",
        ),
    ] = False,
    warn_failure_policy: Annotated[
        str,
        typer.Option(
            "--warn-failure-policy",
            metavar="POLICY",
            help="failurePolicy of the warn entry: Ignore (admitted unpinned while the webhook is down, the default) "
            "or Fail (pods wait for the webhook). The enforce entry is always Fail.",
        ),
    ] = "Ignore",
    mode_admins: Annotated[
        list[str] | None,
        typer.Option(
            "--mode-admins",
            metavar="GROUP",
            help=f"Add a ValidatingAdmissionPolicy letting only this group (repeatable) set or change the {MODE_LABEL}"
            " namespace label (Kubernetes 1.30+). Without it, whoever may create or patch namespaces can switch"
            " one off.",
        ),
    ] = None,
    exempt_namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--exempt-namespace",
            metavar="NAME",
            help="Never send this namespace's objects to the webhook (repeatable): infrastructure such as "
            "karpenter or cert-manager that must start while the webhook is down.",
        ),
    ] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Server replicas (2 or more).")] = 2,
    days: Annotated[
        int, typer.Option("--days", help="Validity in days of the generated CA and serving certificate (1-3650).")
    ] = 1095,
    trust_ca: Annotated[
        Path | None,
        typer.Option(
            "--trust-ca",
            metavar="FILE",
            help="PEM (or the base64 caBundle) of CAs to keep trusting next to the new one, during a rotation.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", metavar="DIR", help="Also write one file per object into DIR (created)."),
    ] = None,
) -> None:
    """Print the webhook's Kubernetes objects as YAML, for `kubectl apply -f -` (needs --stack-name).

    Namespace, ServiceAccount, the TLS Secret (a new CA and serving certificate; or cert-manager objects),
    Deployment, PodDisruptionBudget, Service, NetworkPolicy, optionally the fallback ValidatingAdmissionPolicy,
    and the MutatingWebhookConfiguration (one entry per mode, caBundle set). The server's environment comes
    from the stack: ledger table, region, tag policy parameters, monitored accounts. What each cluster needs
    for Pod Identity is printed on stderr. `--json` prints one `List` object instead.
    """
    runtime = _runtime(ctx)
    with exit_codes(runtime):
        if default_mode not in MODES:
            raise usage_error(f"--default-mode: {default_mode!r} is not one of {', '.join(MODES)}")
        if warn_failure_policy not in ("Fail", "Ignore"):
            raise usage_error(f"--warn-failure-policy: {warn_failure_policy!r} is not Fail or Ignore")
        if replicas < 2:
            raise usage_error(
                f"--replicas: {replicas} leaves pod creation without a webhook during a rollout (2 or more)"
            )
        if not 1 <= days <= 3650:
            raise usage_error(f"--days: {days} is not between 1 and 3650")
        if cert_manager and trust_ca is not None:
            raise usage_error("--trust-ca is for the generated CA; cert-manager rotates its own (drop one of them)")
        stack_name = runtime.options.stack_name
        if stack_name is None:
            raise usage_error("admission manifests needs --stack-name (or TAGWARDEN_STACK_NAME): the deployed stack")
        if output is not None and output.exists() and not output.is_dir():
            raise usage_error(f"--output: {output} exists and is not a directory")
        trusted = read_trusted_cas(trust_ca) if trust_ca is not None else b""
        exempt = tuple(dict.fromkeys(exempt_namespace or ()))
        for name in exempt:
            if not _NAMESPACE_NAME.fullmatch(name):
                raise usage_error(f"--exempt-namespace: {name!r} is not a namespace name")
        outputs, parameters = runtime.stack_outputs, runtime.stack_parameters
        environment = server_environment(outputs, parameters, runtime.options.region)
        environment["ADMISSION_EXEMPT_NAMESPACES"] = ",".join(dict.fromkeys((*EXEMPT_NAMESPACES, *exempt)))
        settings = ManifestSettings(
            image=_image(image, outputs, stack_name),
            environment=environment,
            default_mode=default_mode,
            replicas=replicas,
            cert_manager=cert_manager,
            fallback_policy=fallback_policy,
            pin_templates=pin_templates,
            warn_failure_policy=warn_failure_policy,
            exempt_namespaces=exempt,
            mode_admins=tuple(dict.fromkeys(mode_admins or ())),
            judged_accounts=tuple(environment["MONITORED_ACCOUNTS"].split(",")),
            trusted_ca_pem=trusted,
            tls=None if cert_manager else make_tls_material(dt.datetime.now(dt.UTC), days),
        )
        objects = build_manifests(settings, days)
        region = environment["AWS_REGION"]
        header = [
            f"Tagwarden admission webhook, stack {stack_name}: ledger {environment['LEDGER_TABLE_NAME']} in {region}.",
            "Apply with: kubectl apply -f - ; the webhook configuration comes last.",
        ]
        if settings.tls is not None:
            header.append(
                f"Serving certificate and CA valid until {settings.tls.not_after:%Y-%m-%d}: re-run before then."
            )
        if runtime.options.json_output:
            typer.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
        else:
            typer.echo(dump_documents(objects, header), nl=False)
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            for index, obj in enumerate(objects, start=1):
                (output / file_name(index, obj)).write_text(dump_document(obj))
        for line in pod_identity_notes(outputs, parameters, region):
            typer.echo(line, err=True)


@admission_app.command()
def repository(ctx: typer.Context) -> None:
    """Print the stack's webhook image repository URI (what `make image` pushes to; needs --stack-name)."""
    runtime = _runtime(ctx)
    with exit_codes(runtime):
        stack_name = runtime.options.stack_name
        if stack_name is None:
            raise usage_error("admission repository needs --stack-name (or TAGWARDEN_STACK_NAME)")
        uri = runtime.stack_outputs.get(REPOSITORY_OUTPUT)
        if not uri:
            raise usage_error(
                f"stack {stack_name!r} has no {REPOSITORY_OUTPUT} output: deploy it with EksClusterNames set"
            )
        typer.echo(uri)
