"""The EventBridge rules template.yaml gives the push guard and the scan recorder: which events each
function is subscribed to, with which detail filters, and where an event goes when it cannot be delivered.

The handlers' tests call them with the sample events directly; these tests close the gap between the two:
every sample event a function handles matches one of its rules, and the samples it ignores (a failed push,
a failed replication, an EC2 scan, a storage-class change) are filtered out before they cost an invocation.
The patterns are matched with EventBridge's documented semantics (a list of values or filters per field, an
array in the event matching when any element does), on the template read by the project's own loader.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.template import REPO_ROOT, template

EVENTS = REPO_ROOT / "events"
PARTITION = "aws"
_MISSING = object()


def function_rules(function: str) -> dict[str, dict[str, Any]]:
    """The function's SAM EventBridgeRule events, by event name: their properties."""
    events = template()["Resources"][function]["Properties"]["Events"]
    return {name: spec["Properties"] for name, spec in events.items() if spec["Type"] == "EventBridgeRule"}


def resolved(node: Any) -> Any:
    """The pattern as EventBridge receives it: the only intrinsic in these patterns is the partition's `!Sub`."""
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"}:
            return node["Fn::Sub"].replace("${AWS::Partition}", PARTITION)
        return {key: resolved(value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(value) for value in node]
    return node


def _value_matches(value: Any, filters: list[Any]) -> bool:
    if isinstance(value, list):  # an array in the event matches when any element does
        return any(_value_matches(element, filters) for element in value)
    for wanted in filters:
        if isinstance(wanted, dict):
            ((name, argument),) = wanted.items()
            if name == "exists" and (value is not _MISSING) is argument:
                return True
            if name == "prefix" and isinstance(value, str) and value.startswith(argument):
                return True
            if name not in {"exists", "prefix"}:
                raise AssertionError(f"the test's matcher does not know the {name!r} filter: extend it")
        elif value is not _MISSING and value == wanted:
            return True
    return False


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """EventBridge's matching of `event` against `pattern` (the subset of the syntax the template uses)."""
    for key, wanted in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(wanted, dict):
            candidates = value if isinstance(value, list) else [value]
            if not any(matches(wanted, candidate) for candidate in candidates):
                return False
        elif not _value_matches(value, wanted):
            return False
    return True


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


# (function, event name) -> the pattern the code relies on (detail filters included).
EXPECTED_PATTERNS: dict[tuple[str, str], dict[str, Any]] = {
    ("PushGuardFunction", "EcrImageAction"): {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action"],
        "detail": {"result": ["SUCCESS"], "action-type": ["PUSH", "DELETE"]},
    },
    ("PushGuardFunction", "EcrPullThroughCacheAction"): {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Pull Through Cache Action"],
        "detail": {"sync-status": ["SUCCESS"]},
    },
    ("PushGuardFunction", "EcrReplicationAction"): {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Replication Action"],
        "detail": {"result": ["SUCCESS"], "action-type": ["REPLICATE"]},
    },
    ("ScanRecorderFunction", "EcrImageScan"): {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Scan"],
        # A FAILED scan is recorded too: it is why an image stays unscanned.
        "detail": {"scan-status": ["COMPLETE", "FAILED"]},
    },
    ("ScanRecorderFunction", "InspectorScan"): {
        "source": ["aws.inspector2"],
        "detail-type": ["Inspector2 Scan"],
        "detail": {
            "scan-status": ["INITIAL_SCAN_COMPLETE"],
            "repository-name": [{"prefix": "arn:aws:ecr:"}],
            "image-digest": [{"exists": True}],
        },
    },
    ("ScanRecorderFunction", "InspectorFinding"): {
        "source": ["aws.inspector2"],
        "detail-type": ["Inspector2 Finding"],
        "detail": {"resources": {"type": ["AWS_ECR_CONTAINER_IMAGE"]}},
    },
}

DEAD_LETTER_QUEUES = {
    "PushGuardFunction": "PushGuardDeadLetterQueue",
    "ScanRecorderFunction": "ScanRecorderDeadLetterQueue",
}

# Samples each function handles, and samples it would only ignore (the rules keep them away).
HANDLED = {
    "PushGuardFunction": [
        "push_guard/push_tagged.json",
        "push_guard/push_overwrite.json",
        "push_guard/push_untagged.json",
        "push_guard/push_index_tagged.json",
        "push_guard/push_platform_untagged.json",
        "push_guard/delete_tag.json",
        "push_guard/pull_through_cache_sync.json",
        "push_guard/replication_success.json",
    ],
    "ScanRecorderFunction": [
        "scan_recorder/ecr_scan_complete.json",
        "scan_recorder/ecr_scan_complete_critical.json",
        "scan_recorder/ecr_scan_failed.json",
        "scan_recorder/ecr_scan_no_tags.json",
        "scan_recorder/ecr_scan_platform.json",
        "scan_recorder/ecr_scan_several_tags.json",
        "scan_recorder/inspector_ecr_scan.json",
        "scan_recorder/inspector_ecr_finding.json",
    ],
}
FILTERED_OUT = [
    "push_guard/push_failed.json",
    "push_guard/replication_failed.json",
    "push_guard/other_action.json",
    "scan_recorder/inspector_ec2_scan.json",
]


@pytest.mark.parametrize(("function", "event"), sorted(EXPECTED_PATTERNS))
def test_each_rule_subscribes_its_function_to_the_events_the_code_reads(function: str, event: str) -> None:
    rule = function_rules(function)[event]

    assert resolved(rule["Pattern"]) == EXPECTED_PATTERNS[function, event]
    # Undeliverable events are retried for a day, then kept in the function's own dead-letter queue.
    assert rule["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert rule["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": f"{DEAD_LETTER_QUEUES[function]}.Arn"}}


@pytest.mark.parametrize("function", sorted(DEAD_LETTER_QUEUES))
def test_the_functions_have_no_other_rules_and_their_queue_accepts_each_rules_dead_letters(function: str) -> None:
    resources = template()["Resources"]
    queue = DEAD_LETTER_QUEUES[function]
    [statement] = [
        s for s in resources[f"{queue}Policy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Sid"] == "EventBridgeRuleDeadLetters"
    ]  # fmt: skip

    assert set(function_rules(function)) == {event for f, event in EXPECTED_PATTERNS if f == function}
    for event in function_rules(function):
        assert {"Fn::GetAtt": f"{function}{event}.Arn"} in statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    # Failed asynchronous invocations land in the same queue.
    on_failure = resources[function]["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Type": "SQS", "Destination": {"Fn::GetAtt": f"{queue}.Arn"}}


@pytest.mark.parametrize(("function", "name"), [(f, n) for f, names in HANDLED.items() for n in names])
def test_every_sample_a_function_handles_reaches_it_and_no_other_function(function: str, name: str) -> None:
    event = sample(name)

    reached = {f for (f, rule), pattern in EXPECTED_PATTERNS.items() if matches(resolved(
        function_rules(f)[rule]["Pattern"]), event)}  # fmt: skip

    assert reached == {function}


@pytest.mark.parametrize("name", FILTERED_OUT)
def test_events_the_functions_would_only_ignore_are_filtered_out_by_the_rules(name: str) -> None:
    event = sample(name)

    assert not any(
        matches(resolved(function_rules(function)[rule]["Pattern"]), event) for function, rule in EXPECTED_PATTERNS
    )


def test_the_matcher_reads_arrays_of_objects_as_eventbridge_does() -> None:
    # An Inspector finding names its resources in an array: one ECR image among them is enough.
    pattern = EXPECTED_PATTERNS["ScanRecorderFunction", "InspectorFinding"]
    finding = sample("scan_recorder/inspector_ecr_finding.json")
    on_ec2 = {**finding, "detail": {**finding["detail"], "resources": [{"type": "AWS_EC2_INSTANCE"}]}}
    mixed = {
        **finding,
        "detail": {**finding["detail"], "resources": [{"type": "AWS_EC2_INSTANCE"}, *finding["detail"]["resources"]]},
    }

    assert matches(pattern, finding) and matches(pattern, mixed)
    assert not matches(pattern, on_ec2)
