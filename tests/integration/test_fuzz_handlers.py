"""Property-based: hostile input to each real handler raises only the documented validation error, and
never writes a partial record. Audit lines never stop their batch."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tagwarden.events.parsing import InvalidEventError

from tests.support.audit import audit_line, envelope
from tests.support.events import load_event
from tests.support.handlers import Handler
from tests.support.stack import Stack

HOSTILE_TEXT = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20),
    st.sampled_from(["", "#", "a|b", "latest#POINTER", "shop/api@sha256:x", "\x00", "TAG#x", "💥" * 3, "../.."]),
    st.just("x" * 100_000),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), HOSTILE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)


def deeply_nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"x": value}
    return value


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["top", "detail"]), st.text(max_size=25), st.one_of(JSON_VALUES, st.just(deeply_nested(200)))
    ),
    min_size=1,
    max_size=4,
)
DETAIL_KEYS = ["result", "action-type", "repository-name", "image-digest", "image-tag", "scan-status",
               "image-tags", "finding-severity-counts", "sync-status", "failure-code", "source-account"]  # fmt: skip
TOP_KEYS = ["id", "time", "account", "region", "source", "detail-type", "detail", "resources"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def mutate(event: dict[str, Any], mutations: list[tuple[str, str, Any]], data: st.DataObject) -> dict[str, Any]:
    event = copy.deepcopy(event)
    for where, _, value in mutations:
        if where == "detail" and isinstance(event.get("detail"), dict):
            event["detail"][data.draw(st.sampled_from(DETAIL_KEYS))] = value
        else:
            event[data.draw(st.sampled_from(TOP_KEYS))] = value
    return event


def assert_valid_or_rejected_cleanly(handler: Handler, stack: Stack, event: dict[str, Any]) -> None:
    before = stack.items()
    try:
        result = handler(event)
    except InvalidEventError:
        assert stack.items() == before, "a rejected event wrote something"
        return
    assert result["outcome"] in {"recorded", "late", "duplicate", "untagged", "ignored"}


@SETTINGS
@given(
    sample=st.sampled_from(["push_guard/pull_through_cache_sync.json", "push_guard/replication_success.json"]),
    mutations=MUTATIONS,
    data=st.data(),
)
def test_push_guard_rejects_hostile_cache_and_replication_events_cleanly(
    stack: Stack, push_guard: Handler, sample: str, mutations: list[tuple[str, str, Any]], data: st.DataObject
) -> None:
    assert_valid_or_rejected_cleanly(push_guard, stack, mutate(load_event(sample), mutations, data))


@SETTINGS
@given(mutations=MUTATIONS, data=st.data())
def test_push_guard_rejects_hostile_events_cleanly(
    stack: Stack, push_guard: Handler, mutations: list[tuple[str, str, Any]], data: st.DataObject
) -> None:
    assert_valid_or_rejected_cleanly(
        push_guard, stack, mutate(load_event("push_guard/push_tagged.json"), mutations, data)
    )


@SETTINGS
@given(
    sample=st.sampled_from(["scan_recorder/ecr_scan_complete.json", "scan_recorder/inspector_ecr_scan.json"]),
    mutations=MUTATIONS,
    data=st.data(),
)
def test_scan_recorder_rejects_hostile_events_cleanly(
    stack: Stack, scan_recorder: Handler, sample: str, mutations: list[tuple[str, str, Any]], data: st.DataObject
) -> None:
    assert_valid_or_rejected_cleanly(scan_recorder, stack, mutate(load_event(sample), mutations, data))


AUDIT_LINES = st.one_of(
    HOSTILE_TEXT,
    JSON_VALUES.map(json.dumps),
    st.just('{"x":' * 5000 + "1" + "}" * 5000),  # deeper than json.loads can go
    st.builds(
        lambda path, value: _set_path(audit_line("pod_create_request_response.json"), path, value),
        st.lists(
            st.sampled_from(
                [
                    "objectRef",
                    "responseObject",
                    "spec",
                    "containers",
                    "0",
                    "image",
                    "stage",
                    "verb",
                    "responseStatus",
                    "code",
                    "metadata",
                    "name",
                    "user",
                ]
            ),
            min_size=1,
            max_size=5,
        ),
        JSON_VALUES,
    ),
)


def _set_path(line: dict[str, Any], path: list[str], value: Any) -> str:
    node: Any = line
    for key in path[:-1]:
        child = node[int(key)] if isinstance(node, list) and key.isdigit() and int(key) < len(node) else None
        if isinstance(node, dict):
            child = node.setdefault(key, {})
        if not isinstance(child, dict | list):
            break
        node = child
    if isinstance(node, dict):
        node[path[-1]] = value
    return json.dumps(line)


@SETTINGS
@given(lines=st.lists(AUDIT_LINES, min_size=1, max_size=6))
def test_audit_lines_never_stop_the_batch(stack: Stack, audit_watcher: Handler, lines: list[str]) -> None:
    good = audit_line("cronjob_create.json")
    result = audit_watcher(envelope([*lines, good]))
    assert result["lines"] == len(lines) + 1
    assert result["observations"] >= 1  # the good line is always read


@SETTINGS
@given(data=st.one_of(HOSTILE_TEXT, st.binary(max_size=200).map(lambda b: b.hex())))
def test_undecodable_deliveries_are_rejected_cleanly(stack: Stack, audit_watcher: Handler, data: str) -> None:
    before = stack.items()
    try:
        audit_watcher({"awslogs": {"data": data}})
    except InvalidEventError:
        assert stack.items() == before
