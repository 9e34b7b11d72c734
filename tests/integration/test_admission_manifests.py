"""`tagwarden admission manifests` through the real command, reading a stack from moto's CloudFormation.

What an API server would do with the output is reproduced as closely as this machine allows: every object
is validated against the Kubernetes schemas (strict), the namespace selectors are matched as the API server
matches them, the caBundle verifies the serving certificate in a real TLS handshake for the Service's DNS
name, and the fallback policy's CEL is evaluated on pods.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from tagwarden.cli.admission import EXEMPT_NAMESPACES, SERVER_COMMAND, service_hosts

from tests.integration.test_cli import assert_one_line_error, create_cloudformation_stack, tagwarden
from tests.support.kubernetes import cel, namespace_labels, selector_matches, validate
from tests.support.stack import REGION, Stack

ACCOUNT = "111122223333"
REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tagwarden-admission"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/tagwarden-AdmissionWebhookRole-ABC"
IMAGE = f"{REPOSITORY}@sha256:{'a' * 64}"
SERVICE_HOST = "tagwarden-admission.tagwarden.svc"
PINNED = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop/api:1.4.0@sha256:{'b' * 64}"
BY_TAG = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop/api:1.4.0"
PARAMETERS = {
    "ProtectedTagPatterns": "v[0-9]*.[0-9]*,[0-9]*.[0-9]*",
    "MutableTagPatterns": "latest",
    "SignatureTagPatterns": "sha256-*",
    "FailSeverity": "HIGH",
    "ExtraMonitoredRegistries": "ghcr.io",
    "ExcludedImagePrefixes": "",
    "MonitoredAccounts": "444455556666",
    "EksClusterNames": "prod,staging",
}


@pytest.fixture
def deployed(stack: Stack) -> Stack:
    """A stack deployed with clusters: the ledger outputs and the webhook's role and repository."""
    create_cloudformation_stack(
        "tagwarden",
        {
            "LedgerTableName": stack.table_name,
            "LedgerTableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{stack.table_name}",
            "AlertsTopicArn": stack.topic_arn,
            "AdmissionWebhookRoleArn": ROLE,
            "AdmissionImageRepositoryUri": REPOSITORY,
        },
        PARAMETERS,
    )
    return stack


def manifests(*args: str) -> list[dict[str, Any]]:
    result = tagwarden("admission", "manifests", "--stack-name", "tagwarden", *args)
    assert result.exit_code == 0, result.output
    return [document for document in yaml.safe_load_all(result.stdout) if document is not None]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = by_kind(objects, kind)
    return found


def webhooks(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {hook["name"].split(".")[0]: hook for hook in one(objects, "MutatingWebhookConfiguration")["webhooks"]}


# --- every object is valid Kubernetes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        (),
        ("--default-mode", "enforce", "--fallback-policy", "--image", IMAGE),
        ("--pin-templates", "--replicas", "3"),
        ("--cert-manager", "--default-mode", "off", "--fallback-policy"),
        ("--mode-admins", "platform-security", "--exempt-namespace", "karpenter", "--fallback-policy"),
    ],
)
def test_every_object_printed_is_valid_for_kubernetes_1_33_and_the_newest(
    deployed: Stack, options: tuple[str, ...]
) -> None:
    objects = manifests(*options)

    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            continue  # a CRD: no schema in kubernetes-validate (checked field by field below)
        validate(obj)
    kinds = [obj["kind"] for obj in objects]
    # The namespace first, the webhook configuration last (the API server calls it as soon as it exists).
    assert kinds[0] == "Namespace"
    assert kinds[-1] == "MutatingWebhookConfiguration"
    assert {"ServiceAccount", "Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy"} <= set(kinds)


def test_the_output_is_what_kubectl_reads_yaml_with_every_string_kept_a_string(deployed: Stack) -> None:
    objects = manifests()
    namespace = one(objects, "Namespace")

    # `off` unquoted would be the boolean false to a YAML 1.1 reader such as kubectl's.
    assert namespace["metadata"]["labels"]["tagwarden.io/mode"] == "off"
    assert namespace["metadata"]["name"] == "tagwarden"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --- the Deployment --------------------------------------------------------------------------------------


def test_the_deployment_runs_the_images_entry_point_hardened_with_the_stacks_settings(deployed: Stack) -> None:
    objects = manifests("--image", IMAGE, "--pin-templates")
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    environment = {variable["name"]: variable["value"] for variable in container["env"]}

    assert deployment["metadata"]["namespace"] == "tagwarden"
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["serviceAccountName"] == "tagwarden-admission"
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert selector_matches(anti["labelSelector"], spec["template"]["metadata"]["labels"])
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    # The image's ENTRYPOINT runs as it is: no command or args to drift from SERVER_COMMAND.
    assert container["image"] == IMAGE
    assert "command" not in container and "args" not in container
    assert container["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    [tls_mount] = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    [tls_volume] = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls_mount["readOnly"] is True
    assert (f"{tls_mount['mountPath']}/tls.crt", f"{tls_mount['mountPath']}/tls.key") == (
        SERVER_COMMAND[SERVER_COMMAND.index("--tls-cert") + 1],
        SERVER_COMMAND[SERVER_COMMAND.index("--tls-key") + 1],
    )
    assert tls_volume["secret"]["secretName"] == one(objects, "Secret")["metadata"]["name"]
    assert environment == {
        "LEDGER_TABLE_NAME": deployed.table_name,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "PROTECTED_TAG_PATTERNS": PARAMETERS["ProtectedTagPatterns"],
        "MUTABLE_TAG_PATTERNS": "latest",
        "SIGNATURE_TAG_PATTERNS": "sha256-*",
        "FAIL_SEVERITY": "HIGH",
        "EXTRA_MONITORED_REGISTRIES": "ghcr.io",
        "EXCLUDED_IMAGE_PREFIXES": "",
        "MONITORED_ACCOUNTS": f"{ACCOUNT},444455556666",
        "ADMISSION_EXEMPT_NAMESPACES": "kube-system,kube-public,kube-node-lease,tagwarden",
        "ADMISSION_LEDGER_TIMEOUT_SECONDS": "2",
        "ADMISSION_PIN_TEMPLATES": "true",
        "POWERTOOLS_SERVICE_NAME": "admission-webhook",
        "POWERTOOLS_METRICS_NAMESPACE": "Tagwarden",
    }
    # The server gives up on the ledger well before the API server gives up on the server.
    assert int(environment["ADMISSION_LEDGER_TIMEOUT_SECONDS"]) < webhooks(objects)["enforce"]["timeoutSeconds"]


def test_without_image_the_stacks_repository_at_this_version_and_templates_left_alone(deployed: Stack) -> None:
    from tagwarden import __version__

    [container] = one(manifests(), "Deployment")["spec"]["template"]["spec"]["containers"]
    environment = {variable["name"]: variable["value"] for variable in container["env"]}

    assert container["image"] == f"{REPOSITORY}:{__version__}"
    assert environment["ADMISSION_PIN_TEMPLATES"] == "false"


def test_budget_service_and_network_policy_fit_the_pods(deployed: Stack) -> None:
    objects = manifests()
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    budget = one(objects, "PodDisruptionBudget")
    service = one(objects, "Service")
    policy = one(objects, "NetworkPolicy")["spec"]
    hook_service = webhooks(objects)["enforce"]["clientConfig"]["service"]

    assert budget["spec"]["minAvailable"] == 1
    assert selector_matches(budget["spec"]["selector"], labels)
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, labels)
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc" == SERVICE_HOST
    assert (hook_service["name"], hook_service["namespace"], hook_service["port"]) == (
        "tagwarden-admission",
        "tagwarden",
        443,
    )
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    assert selector_matches(policy["podSelector"], labels)
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8443}]}]  # from anywhere
    egress_ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {("TCP", 443), ("UDP", 53), ("TCP", 53), ("TCP", 80)}
    # Port 80 only to the Pod Identity Agent's link-local addresses.
    agent = [rule for rule in policy["egress"] if rule["ports"][0]["port"] == 80]
    assert [rule["to"] for rule in agent] == [
        [{"ipBlock": {"cidr": "169.254.170.23/32"}}],
        [{"ipBlock": {"cidr": "fd00:ec2::23/128"}}],
    ]


# --- the webhook configuration ---------------------------------------------------------------------------


def test_one_entry_per_mode_with_the_api_servers_settings(deployed: Stack) -> None:
    hooks = webhooks(manifests())

    assert set(hooks) == {"enforce", "warn"}
    for mode, hook in hooks.items():
        assert hook["clientConfig"]["service"]["path"] == f"/admit/{mode}"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["reinvocationPolicy"] == "IfNeeded"
        # warn never refuses a pod, so neither does an unreachable webhook in warn namespaces.
        assert hook["failurePolicy"] == ("Ignore" if mode == "warn" else "Fail")
        assert hook["timeoutSeconds"] == 5
        assert hook["matchPolicy"] == "Equivalent"
        covered = {
            (group, resource)
            for rule in hook["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            if rule["operations"] == ["CREATE", "UPDATE"] and rule["apiVersions"] == ["v1"]
        }
        assert covered == {
            ("", "pods"),
            ("", "pods/ephemeralcontainers"),
            ("", "replicationcontrollers"),
            ("", "podtemplates"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
        }


def test_the_warn_entry_may_wait_for_the_webhook_the_enforce_entry_always_does(deployed: Stack) -> None:
    hooks = webhooks(manifests("--warn-failure-policy", "Fail"))
    default = webhooks(manifests())

    assert (hooks["warn"]["failurePolicy"], hooks["enforce"]["failurePolicy"]) == ("Fail", "Fail")
    assert (default["warn"]["failurePolicy"], default["enforce"]["failurePolicy"]) == ("Ignore", "Fail")


def test_exempt_namespaces_reach_neither_entry_nor_the_fallback_binding_and_the_server_knows_them(
    deployed: Stack,
) -> None:
    objects = manifests("--exempt-namespace", "karpenter", "--exempt-namespace", "cert-manager", "--fallback-policy")
    hooks = webhooks(objects)
    binding = one(objects, "ValidatingAdmissionPolicyBinding")
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    environment = {variable["name"]: variable["value"] for variable in container["env"]}
    karpenter = namespace_labels("karpenter", {"tagwarden.io/mode": "enforce"})

    assert not any(selector_matches(hook["namespaceSelector"], karpenter) for hook in hooks.values())
    assert not selector_matches(binding["spec"]["matchResources"]["namespaceSelector"], karpenter)
    assert selector_matches(
        hooks["enforce"]["namespaceSelector"], namespace_labels("shop", {"tagwarden.io/mode": "enforce"})
    )
    assert environment["ADMISSION_EXEMPT_NAMESPACES"].split(",") == [*EXEMPT_NAMESPACES, "karpenter", "cert-manager"]


def test_the_server_has_memory_for_two_of_the_largest_reviews_and_is_evicted_last(deployed: Stack) -> None:
    pod_spec = one(manifests(), "Deployment")["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]

    # 422 MiB measured for two 6.5 MiB reviews at once (the server's body budget), see the README.
    assert container["resources"]["limits"]["memory"] == "640Mi"
    assert pod_spec["priorityClassName"] == "system-cluster-critical"
    assert container["readinessProbe"]["timeoutSeconds"] == 2


NAMESPACES = {
    "unlabelled": namespace_labels("shop"),
    "enforce": namespace_labels("payments", {"tagwarden.io/mode": "enforce"}),
    "warn": namespace_labels("sandbox", {"tagwarden.io/mode": "warn"}),
    "off": namespace_labels("legacy", {"tagwarden.io/mode": "off"}),
    "typo": namespace_labels("oops", {"tagwarden.io/mode": "enforced"}),
    # Exempt by name, whatever their labels say (a label cannot pull them in).
    "kube-system": namespace_labels("kube-system", {"tagwarden.io/mode": "enforce"}),
    "kube-node-lease": namespace_labels("kube-node-lease"),
    "tagwarden": namespace_labels("tagwarden", {"tagwarden.io/mode": "enforce"}),
}


@pytest.mark.parametrize(
    ("default_mode", "expected"),
    [
        ("warn", {"unlabelled": "warn", "enforce": "enforce", "warn": "warn", "off": None, "typo": "warn"}),
        ("enforce", {"unlabelled": "enforce", "enforce": "enforce", "warn": "warn", "off": None, "typo": "enforce"}),
        ("off", {"unlabelled": None, "enforce": "enforce", "warn": "warn", "off": None, "typo": None}),
    ],
)
def test_each_namespace_gets_exactly_its_mode_and_unlabelled_ones_the_default(
    deployed: Stack, default_mode: str, expected: dict[str, str | None]
) -> None:
    hooks = webhooks(manifests("--default-mode", default_mode))

    for namespace, labels in NAMESPACES.items():
        matched = [mode for mode, hook in hooks.items() if selector_matches(hook["namespaceSelector"], labels)]
        assert matched == ([expected[namespace]] if expected.get(namespace) else []), namespace
    assert set(EXEMPT_NAMESPACES) == {"kube-system", "kube-public", "kube-node-lease", "tagwarden"}


# --- TLS -------------------------------------------------------------------------------------------------


def tls_files(objects: list[dict[str, Any]], directory: Path) -> tuple[Path, Path, bytes]:
    """The Secret's certificate and key as the pod sees them under /tls, and the decoded caBundle."""
    secret = one(objects, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    cert, key = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    key.write_bytes(base64.b64decode(secret["data"]["tls.key"]))
    bundles = {base64.b64decode(hook["clientConfig"]["caBundle"]) for hook in webhooks(objects).values()}
    [bundle] = bundles
    return cert, key, bundle


@pytest.fixture
def tls_server() -> Iterator[Any]:
    """Serve TLS on loopback with a given certificate; each connection gets a one-line answer."""
    servers: list[socket.socket] = []

    def start(cert: Path, key: Path) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)

        def serve() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                try:
                    with context.wrap_socket(connection, server_side=True) as tls:
                        tls.sendall(b"ok\n")
                except (ssl.SSLError, OSError):
                    pass

        threading.Thread(target=serve, daemon=True).start()
        port: int = listener.getsockname()[1]
        return port

    yield start
    for listener in servers:
        listener.close()


def handshake(port: int, bundle: bytes, hostname: str) -> bytes:
    """Connect as the API server does: verify the chain against the caBundle and the Service's DNS name."""
    context = ssl.create_default_context(cadata=bundle.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        return tls.recv(16)


def test_the_serving_certificate_is_signed_by_the_ca_in_the_cabundle_for_the_services_names(
    deployed: Stack, tmp_path: Path, tls_server: Any
) -> None:
    objects = manifests()
    cert_file, key_file, bundle = tls_files(objects, tmp_path)
    [ca] = x509.load_pem_x509_certificates(bundle)
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    secret_ca = base64.b64decode(one(objects, "Secret")["data"]["ca.crt"])

    cert.verify_directly_issued_by(ca)
    assert secret_ca == bundle
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert SERVICE_HOST in names
    assert f"{SERVICE_HOST}.cluster.local" in names
    assert tuple(names) == service_hosts()
    # A real handshake: what the API server checks when it calls https://<service>.<namespace>.svc:443.
    port = tls_server(cert_file, key_file)
    assert handshake(port, bundle, SERVICE_HOST) == b"ok\n"
    assert handshake(port, bundle, f"{SERVICE_HOST}.cluster.local") == b"ok\n"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(port, bundle, "tagwarden-admission.default.svc")


def test_each_run_makes_a_new_ca_and_trust_ca_keeps_the_old_one_trusted_during_a_rotation(
    deployed: Stack, tmp_path: Path, tls_server: Any
) -> None:
    old = tmp_path / "old"
    new = tmp_path / "new"
    old.mkdir()
    new.mkdir()
    old_cert, old_key, old_bundle = tls_files(manifests(), old)
    # The caBundle as `kubectl get mutatingwebhookconfiguration ... -o jsonpath=...caBundle` prints it.
    in_use = tmp_path / "in-use.b64"
    in_use.write_text(base64.b64encode(old_bundle).decode())

    _, _, bundle = tls_files(manifests("--trust-ca", str(in_use)), new)
    _, _, fresh_bundle = tls_files(manifests(), tmp_path)

    assert len(x509.load_pem_x509_certificates(bundle)) == 2
    assert fresh_bundle != old_bundle
    # Pods still serving the old certificate stay trusted until they restart with the new Secret.
    port = tls_server(old_cert, old_key)
    assert handshake(port, bundle, SERVICE_HOST) == b"ok\n"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(port, fresh_bundle, SERVICE_HOST)


def test_cert_manager_makes_the_certificate_and_injects_the_ca(deployed: Stack) -> None:
    objects = manifests("--cert-manager")
    configuration = one(objects, "MutatingWebhookConfiguration")
    certificates = {c["metadata"]["name"]: c["spec"] for c in by_kind(objects, "Certificate")}
    issuers = {i["metadata"]["name"]: i["spec"] for i in by_kind(objects, "Issuer")}
    serving = certificates["tagwarden-admission-serving"]
    volume_secret = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"]

    assert by_kind(objects, "Secret") == []
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "tagwarden/tagwarden-admission-serving"
    }
    assert all("caBundle" not in hook["clientConfig"] for hook in configuration["webhooks"])
    assert serving["dnsNames"] == list(service_hosts())
    assert serving["secretName"] == volume_secret
    assert issuers[serving["issuerRef"]["name"]] == {"ca": {"secretName": "tagwarden-admission-ca"}}
    assert certificates["tagwarden-admission-ca"]["isCA"] is True
    assert issuers[certificates["tagwarden-admission-ca"]["issuerRef"]["name"]] == {"selfSigned": {}}
    assert all(obj["metadata"]["namespace"] == "tagwarden" for obj in objects if obj["apiVersion"].startswith("cert"))


# --- the fallback ValidatingAdmissionPolicy --------------------------------------------------------------


def pod(
    containers: list[str],
    init: list[str] | None = None,
    ephemeral: list[str] | None = None,
    volumes: list[str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(containers)]}
    if volumes is not None:
        spec["volumes"] = [{"name": f"v{i}", "image": {"reference": image}} for i, image in enumerate(volumes)]
    if init is not None:
        spec["initContainers"] = [{"name": f"i{i}", "image": image} for i, image in enumerate(init)]
    if ephemeral is not None:
        spec["ephemeralContainers"] = [{"name": f"e{i}", "image": image} for i, image in enumerate(ephemeral)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "api-"}, "spec": spec}


def admitted(policy: dict[str, Any], request: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """What the API server decides: the policy applies if every matchCondition holds, then every validation."""
    activation = {"request": request, "object": obj, "oldObject": old}
    if not all(cel(condition["expression"], activation) for condition in policy["spec"]["matchConditions"]):
        return True
    return all(cel(validation["expression"], activation) for validation in policy["spec"]["validations"])


CREATE = {"operation": "CREATE", "subResource": ""}


@pytest.mark.parametrize(
    ("request_", "obj", "old", "allowed"),
    [
        (CREATE, pod([PINNED]), None, True),
        (CREATE, pod([PINNED, f"{BY_TAG.rsplit(':', 1)[0]}@sha256:{'c' * 64}"]), None, True),
        (CREATE, pod([BY_TAG]), None, False),
        (CREATE, pod([PINNED, BY_TAG]), None, False),
        (CREATE, pod([PINNED], init=[PINNED]), None, True),
        (CREATE, pod([PINNED], init=[BY_TAG]), None, False),  # an init (or native sidecar) container
        (CREATE, pod([f"{BY_TAG}@sha256:{'d' * 63}"]), None, False),  # a digest too short is no digest
        (CREATE, pod([f"{BY_TAG}@sha512:{'d' * 128}"]), None, False),  # the ledger knows sha256 digests
        # `kubectl debug`: the ephemeralcontainers subresource, an UPDATE.
        (
            {"operation": "UPDATE", "subResource": "ephemeralcontainers"},
            pod([PINNED], ephemeral=[PINNED]),
            pod([PINNED]),
            True,
        ),
        (
            {"operation": "UPDATE", "subResource": "ephemeralcontainers"},
            pod([PINNED], ephemeral=[BY_TAG]),
            pod([PINNED]),
            False,
        ),
        # An ephemeral container added before (by tag, before the policy) does not block a new, pinned one.
        (
            {"operation": "UPDATE", "subResource": "ephemeralcontainers"},
            pod([PINNED], ephemeral=[BY_TAG, PINNED]),
            pod([PINNED], ephemeral=[BY_TAG]),
            True,
        ),
        # Only what the webhook judges: not Docker Hub, not the EKS add-ons' own ECR accounts.
        (
            CREATE,
            pod(["busybox:1.36", "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.2"]),
            None,
            True,
        ),
        (CREATE, pod([BY_TAG.upper().replace("SHOP/API", "shop/api")]), None, False),  # any case of the host
        (CREATE, pod([BY_TAG.replace(".amazonaws.com/", ".amazonaws.com:443/")]), None, False),
        (CREATE, pod([f"444455556666.dkr-ecr.{REGION}.on.aws/shop/api:1"]), None, False),  # a monitored account
        # Image volumes are pulled like container images.
        (CREATE, pod([PINNED], volumes=[BY_TAG]), None, False),
        (CREATE, pod([PINNED], volumes=[PINNED]), None, True),
        # A label change on a pod that predates the webhook: not the policy's business.
        ({"operation": "UPDATE", "subResource": ""}, pod([BY_TAG]), pod([BY_TAG]), True),
        # `kubectl set image` on a bare pod: a changed image must be pinned.
        ({"operation": "UPDATE", "subResource": ""}, pod([BY_TAG]), pod([PINNED]), False),
        ({"operation": "UPDATE", "subResource": ""}, pod([PINNED], init=[BY_TAG]), pod([PINNED], init=[PINNED]), False),
    ],
)
def test_the_fallback_policy_admits_pods_only_with_digests(
    deployed: Stack, request_: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None, allowed: bool
) -> None:
    objects = manifests("--fallback-policy", "--default-mode", "enforce")
    policy = one(objects, "ValidatingAdmissionPolicy")
    validate(obj)

    assert admitted(policy, request_, obj, old) is allowed


def test_the_fallback_binding_denies_in_enforce_namespaces_only(deployed: Stack) -> None:
    for default_mode in ("warn", "enforce"):
        objects = manifests("--fallback-policy", "--default-mode", default_mode)
        policy = one(objects, "ValidatingAdmissionPolicy")
        binding = one(objects, "ValidatingAdmissionPolicyBinding")
        enforce = webhooks(objects)["enforce"]

        assert binding["spec"]["policyName"] == policy["metadata"]["name"]
        assert binding["spec"]["validationActions"] == ["Deny"]
        assert binding["spec"]["matchResources"]["namespaceSelector"] == enforce["namespaceSelector"]
        rules = policy["spec"]["matchConstraints"]["resourceRules"]
        assert rules[0]["resources"] == ["pods", "pods/ephemeralcontainers"]
    assert by_kind(manifests(), "ValidatingAdmissionPolicy") == []


# --- outputs and notes -----------------------------------------------------------------------------------


def test_json_and_output_directory_carry_the_same_objects(deployed: Stack, tmp_path: Path) -> None:
    listed = tagwarden("admission", "manifests", "--stack-name", "tagwarden", "--json", "--image", IMAGE)
    written = tagwarden(
        "admission", "manifests", "--stack-name", "tagwarden", "--image", IMAGE, "--output", str(tmp_path / "out")
    )
    files = sorted((tmp_path / "out").iterdir())

    assert listed.exit_code == 0, listed.output
    assert written.exit_code == 0, written.output
    items = json.loads(listed.stdout)
    assert (items["apiVersion"], items["kind"]) == ("v1", "List")
    printed = [d for d in yaml.safe_load_all(written.stdout) if d is not None]
    assert [yaml.safe_load(path.read_text()) for path in files] == printed
    assert files[0].name == "01-namespace-tagwarden.yaml"
    assert files[-1].name.endswith("-mutatingwebhookconfiguration-tagwarden-admission.yaml")
    assert [obj["kind"] for obj in items["items"]] == [obj["kind"] for obj in printed]


def test_stderr_says_which_clusters_need_the_pod_identity_agent(deployed: Stack) -> None:
    result = tagwarden("admission", "manifests", "--stack-name", "tagwarden")

    assert result.exit_code == 0
    assert ROLE in result.stderr
    assert "tagwarden/tagwarden-admission" in result.stderr
    for cluster in ("prod", "staging"):
        assert (
            f"aws eks create-addon --region {REGION} --cluster-name {cluster} --addon-name eks-pod-identity-agent"
            in result.stderr
        )
    assert "eks-pod-identity-agent" not in result.stdout


def test_repository_prints_the_stacks_image_repository(deployed: Stack) -> None:
    result = tagwarden("admission", "repository", "--stack-name", "tagwarden")

    assert (result.exit_code, result.stdout) == (0, f"{REPOSITORY}\n")


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--stack-name", "nope"), "'nope' does not exist"),
        (("--stack-name", "tagwarden", "--default-mode", "audit"), "--default-mode: 'audit'"),
        (("--stack-name", "tagwarden", "--replicas", "1"), "--replicas: 1"),
        (("--stack-name", "tagwarden", "--warn-failure-policy", "ignore"), "--warn-failure-policy: 'ignore'"),
        (("--stack-name", "tagwarden", "--days", "0"), "--days: 0"),
        (("--stack-name", "tagwarden", "--image", "Not A Reference"), "--image:"),
        (("--stack-name", "tagwarden", "--image", "registry.example.com/Shop/API:1"), "--image:"),
        (("--stack-name", "tagwarden", "--image", f"{REPOSITORY}"), "names neither a tag nor a digest"),
        (("--stack-name", "tagwarden", "--image", "localhost:5000/admission"), "names neither a tag nor a digest"),
        (("--stack-name", "tagwarden", "--exempt-namespace", "Not_A_Namespace"), "--exempt-namespace:"),
        (("--stack-name", "tagwarden", "--cert-manager", "--trust-ca", "x.pem"), "--trust-ca"),
        (("--stack-name", "tagwarden", "--trust-ca", "/nonexistent/ca.pem"), "--trust-ca: cannot read"),
        (("--table", "t"), "needs --stack-name"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(deployed: Stack, args: tuple[str, ...], fragment: str) -> None:
    assert_one_line_error(tagwarden("admission", "manifests", *args), 2, fragment)


def test_a_file_that_is_not_a_certificate_is_refused(deployed: Stack, tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    occupied = tmp_path / "file"
    occupied.write_text("")

    assert_one_line_error(
        tagwarden("admission", "manifests", "--stack-name", "tagwarden", "--trust-ca", str(junk)), 2, "no PEM"
    )
    assert_one_line_error(
        tagwarden("admission", "manifests", "--stack-name", "tagwarden", "--output", str(occupied)), 2, "--output"
    )


def test_a_stack_without_clusters_has_no_repository_and_is_not_a_tagwarden_stack_without_a_ledger(
    stack: Stack,
) -> None:
    create_cloudformation_stack(
        "no-clusters",
        {
            "LedgerTableName": stack.table_name,
            "LedgerTableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{stack.table_name}",
        },
        {"EksClusterNames": ""},
    )
    create_cloudformation_stack("something-else", {"BucketName": "b"})

    assert_one_line_error(
        tagwarden("admission", "manifests", "--stack-name", "no-clusters"), 2, "no AdmissionImageRepositoryUri output"
    )
    assert_one_line_error(tagwarden("admission", "repository", "--stack-name", "no-clusters"), 2, "EksClusterNames")
    assert_one_line_error(
        tagwarden("admission", "manifests", "--stack-name", "something-else", "--image", IMAGE),
        2,
        "not a Tagwarden stack",
    )
    # With an image it prints, and warns that nothing gives the pods a role.
    result = tagwarden("admission", "manifests", "--stack-name", "no-clusters", "--image", IMAGE)
    assert result.exit_code == 0, result.output
    assert "warning: the stack has no AdmissionWebhookRoleArn output" in result.stderr


def test_cloudformation_out_of_reach_is_an_aws_error(deployed: Stack) -> None:
    # Nothing listens on port 9 (discard): the client's retries end in a connection error.
    result = tagwarden("admission", "manifests", "--stack-name", "tagwarden", "--endpoint-url", "http://127.0.0.1:9")

    assert_one_line_error(result, 3, "DescribeStacks failed")


# --- who may switch a namespace's mode (red team M5) --------------------------------------------------------


def _namespace(mode: str | None) -> dict[str, Any]:
    labels = {"kubernetes.io/metadata.name": "shop"} | ({"tagwarden.io/mode": mode} if mode else {})
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": labels}}


ADMIN = {"username": "alice", "groups": ["platform-security", "system:authenticated"]}
DEVELOPER = {"username": "bob", "groups": ["developers", "system:authenticated"]}


@pytest.mark.parametrize(
    ("operation", "new", "old", "user", "allowed"),
    [
        ("CREATE", "off", None, DEVELOPER, False),
        ("CREATE", None, None, DEVELOPER, True),  # the default mode applies
        ("CREATE", "off", None, ADMIN, True),
        ("UPDATE", "off", "enforce", DEVELOPER, False),
        ("UPDATE", None, "enforce", DEVELOPER, False),  # removing the label is a change too
        ("UPDATE", "enforce", None, DEVELOPER, False),
        ("UPDATE", "enforce", "enforce", DEVELOPER, True),  # other labels and annotations stay free
        ("UPDATE", "off", "enforce", ADMIN, True),
        ("UPDATE", "off", "enforce", {"username": "system:anonymous"}, False),
    ],
)
def test_only_mode_admins_set_or_change_the_mode_label(
    deployed: Stack, operation: str, new: str | None, old: str | None, user: dict[str, Any], allowed: bool
) -> None:
    objects = manifests("--mode-admins", "platform-security")
    policy = next(p for p in by_kind(objects, "ValidatingAdmissionPolicy") if "mode" in p["metadata"]["name"])
    binding = next(b for b in by_kind(objects, "ValidatingAdmissionPolicyBinding") if "mode" in b["metadata"]["name"])
    activation = {
        "request": {"operation": operation, "userInfo": user},
        "object": _namespace(new),
        "oldObject": _namespace(old) if operation == "UPDATE" else None,
    }

    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["namespaces"]
    assert all(cel(v["expression"], activation) for v in policy["spec"]["validations"]) is allowed


def test_without_mode_admins_no_guard_policy(deployed: Stack) -> None:
    assert by_kind(manifests(), "ValidatingAdmissionPolicy") == []
