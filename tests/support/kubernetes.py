"""The API server's side of admission, as far as it can be reproduced without one: schema validation of
objects (kubernetes-validate, strict), label selectors as the API server matches them, and the CEL
environment of a ValidatingAdmissionPolicy (cel-python)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import celpy
import kubernetes_validate  # type: ignore[import-untyped]  # no type information
from celpy.adapter import json_to_cel

# EKS's oldest standard-support version when this was written, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.33", "1.37")


def validate(obj: Mapping[str, Any]) -> None:
    """Raise unless `obj` is valid for every version of KUBERNETES_VERSIONS (strict: no unknown fields)."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(dict(obj), version, strict=True)


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector matches `labels` (matchLabels and matchExpressions, as the API server reads them)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        # NotIn matches a namespace without the label (Kubernetes' set-based requirement semantics).
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def namespace_labels(name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A namespace's labels as the API server keeps them: `kubernetes.io/metadata.name` is always set."""
    return {"kubernetes.io/metadata.name": name, **(extra or {})}


def cel(expression: str, activation: Mapping[str, Any]) -> Any:
    """Evaluate a CEL expression with JSON values bound to its variables (object, oldObject, request)."""
    environment = celpy.Environment()
    program = environment.program(environment.compile(expression))
    return program.evaluate({name: json_to_cel(value) for name, value in activation.items()})
