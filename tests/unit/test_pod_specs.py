"""The one table of kinds carrying a pod spec, and the readers that must agree with it."""

from __future__ import annotations

from tagwarden.cli.admission import WEBHOOK_RULES
from tagwarden.events.pod_specs import POD_SPEC_BY_KIND, POD_SPEC_KINDS


def test_the_webhook_is_registered_for_exactly_the_kinds_it_reads_pod_specs_from() -> None:
    # A kind in the table but not in the rules is never sent to the webhook; one in the rules but not in the
    # table is sent and always allowed untouched.
    registered = {
        (group, resource)
        for rule in WEBHOOK_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        if "/" not in resource
    }
    assert registered == {(kind.group, kind.resource) for kind in POD_SPEC_KINDS}
    subresources = {resource for rule in WEBHOOK_RULES for resource in rule["resources"] if "/" in resource}
    assert subresources == {"pods/ephemeralcontainers"}


def test_each_kind_is_listed_once_and_every_path_ends_at_a_spec() -> None:
    assert len(POD_SPEC_BY_KIND) == len(POD_SPEC_KINDS) == len({kind.resource for kind in POD_SPEC_KINDS})
    assert all(kind.path[-1] == "spec" for kind in POD_SPEC_KINDS)
