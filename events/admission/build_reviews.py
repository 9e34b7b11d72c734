#!/usr/bin/env python3
"""Rebuild the AdmissionReview samples from the audit lines' objects (`../audit_watcher/lines/`).

The envelope follows kube-apiserver's `admission.k8s.io/v1` `AdmissionRequest` (Kubernetes reference
"kube-apiserver Admission (v1)" and "Dynamic Admission Control"): `uid`, `kind`, `resource`,
`subResource`, `requestKind`, `requestResource`, `requestSubResource`, `name`, `namespace`, `operation`,
`userInfo`, `object`, `oldObject`, `dryRun`, `options`. The objects are what the API server hands a
mutating webhook: defaulted, but before `BeforeCreate`, so a pod created by a controller has only its
`generateName` (no `name`, `uid`, `resourceVersion`; `creationTimestamp: null`).

Usage: `python3 events/admission/build_reviews.py` (rewrites the samples; deterministic).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LINES = HERE.parent / "audit_watcher" / "lines"
ECR = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
CONTROLLER = {
    "username": "system:serviceaccount:kube-system:replicaset-controller",
    "uid": "5f4a8a7e-2a35-4c8e-9d0e-8c0f6ad2a7c1",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
}


def _line(name: str) -> dict[str, Any]:
    line: dict[str, Any] = json.loads((LINES / name).read_text())
    return line


def _deployer() -> dict[str, Any]:
    user: dict[str, Any] = _line("deployment_create.json")["user"]
    return user


def _as_admitted(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as a mutating webhook sees it on CREATE: no server-set identity yet."""
    admitted = copy.deepcopy(obj)
    metadata = admitted["metadata"]
    for name in ("uid", "resourceVersion", "generation", "managedFields"):
        metadata.pop(name, None)
    metadata["creationTimestamp"] = None
    admitted.pop("status", None)
    return admitted


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _gvr(group: str, version: str, resource: str) -> dict[str, str]:
    return {"group": group, "version": version, "resource": resource}


def review(
    uid: str,
    kind: dict[str, str],
    resource: dict[str, str],
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    user: dict[str, Any],
    name: str = "",
    sub_resource: str = "",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """One AdmissionReview as the API server POSTs it."""
    request: dict[str, Any] = {"uid": uid, "kind": kind, "resource": resource}
    if sub_resource:
        request["subResource"] = sub_resource
    request.update({"requestKind": kind, "requestResource": resource})
    if sub_resource:
        request["requestSubResource"] = sub_resource
    if name:
        request["name"] = name
    request.update({"namespace": "shop", "operation": operation, "userInfo": user, "object": obj})
    request["oldObject"] = old
    request["dryRun"] = dry_run
    options_kind = "CreateOptions" if operation == "CREATE" else "UpdateOptions"
    request["options"] = {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"}
    if dry_run:
        request["options"]["dryRun"] = ["All"]
    if user is not CONTROLLER:
        request["options"]["fieldManager"] = "kubectl-client-side-apply"
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def controller_pod() -> dict[str, Any]:
    pod = _as_admitted(_line("pod_create_request_response.json")["responseObject"])
    del pod["metadata"]["name"]
    return pod


def sidecar_pod() -> dict[str, Any]:
    """A pod with an init container and a native sidecar (an init container with restartPolicy Always)."""
    pod = controller_pod()
    spec = pod["spec"]
    api = spec["containers"][0]
    spec["initContainers"] = [
        {
            "name": "migrate",
            "image": f"{ECR}/shop/migrations:1.4.0",
            "command": ["/app/bin/migrate", "--wait"],
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        },
        {
            "name": "log-shipper",
            "image": f"{ECR}/platform/fluent-bit:3.1.9",
            "restartPolicy": "Always",
            "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "20m", "memory": "32Mi"}},
            "volumeMounts": copy.deepcopy(api["volumeMounts"]),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        },
    ]
    return pod


def ephemeral_update() -> tuple[dict[str, Any], dict[str, Any]]:
    """`kubectl debug -it api-7d9f8c6b5d-x2k9p --image=... --target=api`: the old pod and the new one."""
    old = _line("pod_create_request_response.json")["responseObject"]
    old.pop("status", None)
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [
        {
            "name": "debugger-wdvdl",
            "image": f"{ECR}/platform/debug-tools:2024.11",
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
            "stdin": True,
            "tty": True,
            "targetContainerName": "api",
        }
    ]
    return new, old


def job_update() -> tuple[dict[str, Any], dict[str, Any]]:
    """A Job's metadata update (a label added by a controller); its template is immutable."""
    cron = _line("cronjob_create.json")["requestObject"]
    job: dict[str, Any] = {
        "kind": "Job",
        "apiVersion": "batch/v1",
        "metadata": {
            "name": "api-reindex-29391900",
            "namespace": "shop",
            "uid": "d3a1c9f2-5b7e-4f0a-9c61-2e8b7d4f3a10",
            "resourceVersion": "48291177",
            "generation": 1,
            "creationTimestamp": "2026-11-20T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "api-reindex"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "api-reindex",
                    "uid": "3c3f7b1e-8d2a-4e55-b0f4-1f6a9d2c7e48",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": copy.deepcopy(cron["spec"]["jobTemplate"]["spec"]),
    }
    template = job["spec"]["template"]
    template["metadata"] = {"labels": {"batch.kubernetes.io/job-name": "api-reindex-29391900"}}
    job["spec"].update({"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed"})
    new = copy.deepcopy(job)
    new["metadata"]["labels"]["team"] = "search"
    return new, job


def main() -> None:
    deployer = _deployer()
    pod = controller_pod()
    samples = {
        "pod_create_generate_name.json": review(
            "0df28fbd-5f5f-11e8-bc74-36e6bb280816", _gvk("", "v1", "Pod"), _gvr("", "v1", "pods"), pod, user=CONTROLLER
        ),
        "pod_create_sidecars.json": review(
            "2d7b1f0c-9c1e-4a51-8f7e-6a3c2b1d0e9f",
            _gvk("", "v1", "Pod"),
            _gvr("", "v1", "pods"),
            sidecar_pod(),
            user=CONTROLLER,
        ),
        "pod_create_dry_run.json": review(
            "8c3e0f5a-1b2d-4e6f-9a7b-3c5d7e9f1a2b",
            _gvk("", "v1", "Pod"),
            _gvr("", "v1", "pods"),
            {**_as_admitted(_line("pod_create_request_response.json")["responseObject"])},
            user=deployer,
            name="api-7d9f8c6b5d-x2k9p",
            dry_run=True,
        ),
        "deployment_create.json": review(
            "4b1e2c3d-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
            _gvk("apps", "v1", "Deployment"),
            _gvr("apps", "v1", "deployments"),
            _as_admitted(_line("deployment_create.json")["responseObject"]),
            user=deployer,
            name="api",
        ),
        "cronjob_create.json": review(
            "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b",
            _gvk("batch", "v1", "CronJob"),
            _gvr("batch", "v1", "cronjobs"),
            _as_admitted(_line("cronjob_create.json")["requestObject"]),
            user=deployer,
            name="api-reindex",
        ),
    }
    new, old = ephemeral_update()
    samples["pod_ephemeralcontainers_update.json"] = review(
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        _gvk("", "v1", "Pod"),
        _gvr("", "v1", "pods"),
        new,
        operation="UPDATE",
        user=deployer,
        name="api-7d9f8c6b5d-x2k9p",
        sub_resource="ephemeralcontainers",
        old=old,
    )
    new, old = job_update()
    samples["job_update.json"] = review(
        "f0e1d2c3-b4a5-4968-8776-655443322110",
        _gvk("batch", "v1", "Job"),
        _gvr("batch", "v1", "jobs"),
        new,
        operation="UPDATE",
        user=deployer,
        name="api-reindex-29391900",
        old=old,
    )
    for name, sample in samples.items():
        (HERE / name).write_text(json.dumps(sample, indent=2) + "\n")


if __name__ == "__main__":
    main()
