"""The audit watcher: checks what EKS workloads deploy, and what the kubelet pulled, against the ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from tagwarden.clock import utcnow
from tagwarden.domain.alerts import Alert
from tagwarden.domain.deployments import (
    Content,
    DeploymentView,
    ImageReferenced,
    Observation,
    check,
    content_of,
    history_digests,
    ledger_keys,
    rollouts_of,
    scanned_after_lines,
    tags_named_before_their_move,
    uncovered_digests,
)
from tagwarden.domain.images import ImageName, looks_like_ecr
from tagwarden.domain.registry_scope import Judgement, RegistryScope
from tagwarden.domain.tags import TagRef
from tagwarden.domain.workloads import needs_refresh, stale_sites
from tagwarden.events.audit import AuditBatch
from tagwarden.observability import logger, metrics
from tagwarden.ports import DeploymentLedger, FindingEntry, RecordedAlerts, UsageUpdate
from tagwarden.services.alert_delivery import AlertDelivery


class AuditWatcher:
    """Turns a batch of audit observations into usage records and deduplicated deployment findings."""

    def __init__(
        self,
        ledger: DeploymentLedger,
        delivery: AlertDelivery,
        scope: RegistryScope | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._ledger = ledger
        self._delivery = delivery
        self._scope = scope or RegistryScope()
        self._clock = clock

    def handle(self, batch: AuditBatch) -> dict[str, object]:
        """Check one subscription delivery; every finding is published once, however often it is seen."""
        logger.set_correlation_id(batch.delivery_id)
        self._report_skipped(batch)
        self._report_unrecognised_ecr(batch.observations)
        verdicts = _judgements(self._scope, batch.observations)
        observations = [
            o for o, verdict in zip(batch.observations, verdicts, strict=True) if verdict is Judgement.JUDGED
        ]
        excluded = verdicts.count(Judgement.EXCLUDED)
        out_of_scope = verdicts.count(Judgement.UNMONITORED)
        if out_of_scope:
            metrics.add_metric(name="UnmonitoredImages", unit="Count", value=out_of_scope)
        if excluded:
            # EKS add-on images and the operator's exclusions: never alerted, but visible.
            metrics.add_metric(name="ExcludedImages", unit="Count", value=excluded)
        published: list[str] = []
        if observations:
            view, contents = self._read_view(observations)
            now = self._clock()
            starts, rollouts = rollouts_of(observations, contents, view)
            # Findings are judged with the workloads' rollouts including this batch's (how each rollout began).
            judged = replace(view, rollouts={**view.rollouts, **{loc: new for loc, (_, new) in rollouts.items()}})
            findings: dict[str, Alert] = {}
            for observation, content, since in zip(observations, contents, starts, strict=True):
                alert = check(observation, content, judged, now, since, self._scope)
                if alert is not None:
                    findings.setdefault(alert.alert_id, alert)
            if rollouts:
                self._ledger.record_rollouts(rollouts)
            self._ledger.record_usage(_usage_updates(observations, view))
            recorded = self._ledger.recorded_findings(findings) if findings else {}
            for alert_id, alert in findings.items():
                published.extend(self._publish_once(alert, recorded.get(alert_id)))
        metrics.add_metric(name="AuditLines", unit="Count", value=batch.lines)
        metrics.add_metric(name="ImageObservations", unit="Count", value=len(observations))
        logger.info(
            "audit batch checked",
            extra={
                "cluster": batch.cluster,
                "lines": batch.lines,
                "observations": len(observations),
                "unmonitored": out_of_scope,
                "excluded": excluded,
                "alerts": published,
            },
        )
        return {
            "cluster": batch.cluster,
            "lines": batch.lines,
            "observations": len(observations),
            "skipped": dict(batch.skipped),
            "repaired": dict(batch.repaired),
            "alerts": published,
        }

    def _read_view(self, observations: list[Observation]) -> tuple[DeploymentView, list[Content]]:
        """The ledger as the batch's lines need it: one batched read in the common case.

        More only where lines need it: digests their tags' pointers do not cover, the history of tags named
        by lines older than the tag's last move (one Query per tag), the scan history of digests scanned
        after a line naming them (one Query per digest).
        """
        tags, digests = ledger_keys(observations)
        locations = {observation.workload.location for observation in observations}
        view = self._ledger.read_deployment_view(tags, digests, locations)
        older = tags_named_before_their_move(observations, view)
        if older:
            histories = {tag: self._ledger.tag_history(tag, *times) for tag, times in older.items()}
            view = view.merged(DeploymentView({}, {}, histories=histories))
            metrics.add_metric(name="LateAuditTagReads", unit="Count", value=len(older))
        missing = uncovered_digests(observations, view) | history_digests(view)
        if missing:
            view = view.merged(self._ledger.read_deployment_view((), missing))
        contents = [content_of(observation, view) for observation in observations]
        rescanned = scanned_after_lines(observations, contents)
        if rescanned:
            view = view.merged(DeploymentView({}, {}, first_scans=self._ledger.first_completed_scans(rescanned)))
        return view, contents

    def _publish_once(self, alert: Alert, recorded: RecordedAlerts | None) -> tuple[str, ...]:
        """A new finding is recorded and published; one seen before is only finished if it was not."""
        entry = FindingEntry(alert.alert_id)
        if recorded is None:
            recorded = self._ledger.record_finding(alert, self._delivery.lease_until())
        if recorded is None:
            return self._delivery.deliver(entry, (alert,))
        return self._delivery.redeliver(entry, recorded)

    @staticmethod
    def _report_unrecognised_ecr(observations: Iterable[Observation]) -> None:
        """ECR-looking hosts the parser does not know: judged as written, and reported so the form is added."""
        odd = [n.registry for o in observations for n in _names(o) if looks_like_ecr(n.registry)]
        if odd:
            metrics.add_metric(name="UnrecognisedEcrReferences", unit="Count", value=len(odd))
            logger.warning(
                "image references name ECR in a hostname form Tagwarden does not recognise; judged as written",
                extra={"registries": sorted(set(odd))[:10]},
            )

    @staticmethod
    def _report_skipped(batch: AuditBatch) -> None:
        skipped = sum(batch.skipped.values())
        if skipped:
            metrics.add_metric(name="SkippedAuditLines", unit="Count", value=skipped)
            logger.warning("audit lines skipped", extra={"cluster": batch.cluster, "reasons": dict(batch.skipped)})
        repaired = sum(batch.repaired.values())
        if repaired:
            metrics.add_metric(name="RepairedAuditLines", unit="Count", value=repaired)
            reasons = dict(batch.repaired)
            logger.warning("audit lines read after cutting", extra={"cluster": batch.cluster, "reasons": reasons})
        if batch.invalid_images:
            metrics.add_metric(name="InvalidImageReferences", unit="Count", value=len(batch.invalid_images))
            logger.warning("invalid image references skipped", extra={"images": batch.invalid_images[:10]})


def _judgements(scope: RegistryScope, observations: Iterable[Observation]) -> list[Judgement]:
    """The scope's verdict on each observation, judged once per distinct set of names in the delivery.

    A delivery names the same few hundred repositories thousands of times; the verdict depends on the names alone.
    """
    known: dict[tuple[ImageName, ...], Judgement] = {}
    verdicts: list[Judgement] = []
    for observation in observations:
        names = tuple(_names(observation))
        verdict = known.get(names)
        if verdict is None:
            verdict = known[names] = scope.judge_any(names)
        verdicts.append(verdict)
    return verdicts


def _names(observation: Observation) -> list[ImageName]:
    """The repositories an observation names: the spec's, and the runtime's when it reports another."""
    if isinstance(observation, ImageReferenced):
        return [observation.reference.name]
    # The runtime may name another registry than the spec's (a mirror): either makes it ours.
    return [observation.running.name] + ([observation.started_from.name] if observation.started_from else [])


def _usage_updates(observations: Iterable[Observation], view: DeploymentView) -> list[UsageUpdate]:
    """One refresh per (tag or digest, workload), and only where the ledger's last-seen is stale."""
    updates: dict[tuple[object, str], UsageUpdate] = {}
    for observation in observations:
        location, seen = observation.workload.location, observation.seen_at
        if isinstance(observation, ImageReferenced):
            references = [observation.reference]
        else:
            references = [observation.running] + ([observation.started_from] if observation.started_from else [])
        for reference in references:
            target: TagRef | tuple[ImageName, str]
            if reference.digest is not None:
                target = (reference.name, reference.digest)
                known = view.digest_usage.get(target)
            elif reference.tag is not None:
                target = TagRef(reference.name, reference.tag)
                pointer = view.pointers.get(target)
                known = pointer.in_use if pointer is not None else None
            else:
                continue
            if known is None or not needs_refresh(known, location, seen):
                continue
            previous = updates.get((target, location))
            if previous is None or previous.seen_at < seen:
                forget = tuple(stale_sites(known, seen, adding=0 if location in known else 1))
                if isinstance(target, TagRef):
                    updates[(target, location)] = UsageUpdate(location, seen, tag=target, forget=forget)
                else:
                    updates[(target, location)] = UsageUpdate(location, seen, digest=target, forget=forget)
    return list(updates.values())
