"""Kubernetes workloads as the audit log shows them, and where images are in use."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tagwarden.domain.alerts import KubernetesContext, UsageSite

# A workload that stopped using a tag this long ago no longer counts as using it.
IN_USE_WINDOW = timedelta(days=30)
# The ledger's "last seen" of a workload is refreshed at most this often (audit logs repeat a lot).
USAGE_REFRESH = timedelta(hours=1)

# At most this many workloads are kept per tag or digest (the most recently seen), and listed in an alert:
# generated workload names must not grow a ledger item towards DynamoDB's 400 KB or an alert past SNS's 256 KB.
MAX_SITES_KEPT = 50
MAX_SITES_ALERTED = 10

# Pods of Deployments are named <deployment>-<pod-template-hash>-<5 chars>; of ReplicaSets, DaemonSets and
# Jobs <owner>-<5 chars>; of StatefulSets <owner>-<ordinal>. Jobs of CronJobs are <cronjob>-<scheduled
# time in minutes>, eight digits or more.
_DEPLOYMENT_POD = re.compile(r"(?P<owner>.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[a-z0-9]{5}")
_GENERATED_POD = re.compile(r"(?P<owner>.+)-[a-z0-9]{5}")
_STATEFUL_POD = re.compile(r"(?P<owner>.+)-[0-9]{1,7}")
_CRONJOB_JOB = re.compile(r"(?P<owner>.+)-[0-9]{8,}")
_REPLICASET = re.compile(r"(?P<owner>.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}")


# Who Kubernetes' own controllers act as in audit lines (`user.username`).
_CONTROLLER_MANAGER = "system:kube-controller-manager"
_SYSTEM_CONTROLLER = "system:serviceaccount:kube-system:"


@functools.lru_cache(maxsize=4096)
def workload_of_pod(pod_name: str) -> str:
    """The workload a pod most likely belongs to, from Kubernetes' naming of generated pods.

    Audit events of kubelet status updates name only the pod, so this is what lets all replicas (and all
    runs of a CronJob) share one alert.
    """
    if pod_name.endswith("-"):
        return workload_of_generate_name(pod_name)
    for pattern in (_DEPLOYMENT_POD, _GENERATED_POD, _STATEFUL_POD):
        match = pattern.fullmatch(pod_name)
        if match:
            return workload_of_job(match["owner"])
    return pod_name


def workload_of_generate_name(prefix: str) -> str:
    """The workload of a pod known only by its `generateName` (a create logged at level Request).

    Controllers name pods `<owner>-` plus a random suffix, so the prefix without its dash is the owner:
    a ReplicaSet (`<deployment>-<pod-template-hash>`), a Job, a DaemonSet. The result is the same as for
    the pod's generated name, so both lines share the workload's finding.
    """
    owner = prefix.rstrip("-")
    match = _REPLICASET.fullmatch(owner)
    return workload_of_job(match["owner"] if match else owner) if owner else prefix


def workload_of_job(job_name: str) -> str:
    """The CronJob a Job was created by, when its name says so; else the Job itself."""
    match = _CRONJOB_JOB.fullmatch(job_name)
    return match["owner"] if match else job_name


def cluster_id(name: str, owner: str | None, region: str | None, home_account: str | None) -> str:
    """How the ledger and alerts name an EKS cluster: its bare name in the stack's own account, else
    `<account>:<region>:<name>`.

    EKS names are unique only within an account and region, and an organization's member accounts reuse
    them (`prod` everywhere): the name alone would merge two clusters' usage records, rollouts and findings
    (locations and alert ids are built from it). The stack's own clusters keep the bare name, so a ledger
    written before organization support stays valid; `:` is not allowed in EKS names (nor `/`, which
    separates a location's parts), so a qualified id never equals a bare name. An unknown owner (a replayed
    raw audit file) or an unknown home account is the stack's own: there is nothing to tell it apart from.
    """
    if not owner or home_account is None or owner == home_account:
        return name
    return f"{owner}:{region or '-'}:{name}"


@dataclass(frozen=True, slots=True)
class Workload:
    """The object an audit event is about, and who acted on it."""

    cluster: str
    namespace: str | None
    kind: str
    name: str
    user: str | None = None
    audit_id: str | None = None

    @property
    def by_controller(self) -> bool:
        """Whether Kubernetes' own controllers made the write (a ReplicaSet's or Job's pod creation), not a
        person or their tools (kubectl, CI, GitOps).

        The controller manager acts as one service account per controller in `kube-system`
        (`system:serviceaccount:kube-system:replicaset-controller`, `job-controller`, `cronjob-controller`,
        `daemon-set-controller`, `statefulset-controller`, ...), or as `system:kube-controller-manager`
        without per-controller credentials. Creating service accounts in `kube-system` is a cluster
        administrator's right, so the name cannot be borrowed to hide a rollback.
        """
        user = self.user or ""
        return user == _CONTROLLER_MANAGER or (user.startswith(_SYSTEM_CONTROLLER) and user.endswith("-controller"))

    @property
    def owner_name(self) -> str:
        """The workload name that replicas share (pods are mapped to their likely owner)."""
        if self.kind == "Pod":
            return workload_of_pod(self.name)
        return workload_of_job(self.name) if self.kind == "Job" else self.name

    @property
    def location(self) -> str:
        """Where an image is in use, `cluster/namespace/workload`: a workload and its pods are one place.

        It is also what makes a deployment finding 'the same' across replicas, retries and deliveries.
        """
        return f"{self.cluster}/{self.namespace or '-'}/{self.owner_name}"

    def context(self) -> KubernetesContext:
        """The alert's `kubernetes` field."""
        return KubernetesContext(
            cluster=self.cluster,
            namespace=self.namespace,
            kind=self.kind,
            name=self.name,
            user=self.user,
            audit_id=self.audit_id,
        )


def recent_sites(in_use: Mapping[str, datetime], now: datetime) -> tuple[UsageSite, ...]:
    """The workloads seen using an image within IN_USE_WINDOW, most recent first."""
    sites = []
    for location, last_seen in in_use.items():
        if now - last_seen > IN_USE_WINDOW:
            continue
        parts = location.split("/", 2)
        if len(parts) != 3:
            continue
        cluster, namespace, workload = parts
        sites.append(UsageSite(cluster=cluster, namespace=namespace, workload=workload, last_seen=last_seen))
    return tuple(sorted(sites, key=lambda site: site.last_seen, reverse=True))


def stale_sites(in_use: Mapping[str, datetime], now: datetime, adding: int = 0) -> list[str]:
    """Locations to forget: unseen for IN_USE_WINDOW, and the oldest beyond MAX_SITES_KEPT (room for `adding`)."""
    fresh = sorted((seen, location) for location, seen in in_use.items() if now - seen <= IN_USE_WINDOW)
    stale = [location for location, seen in in_use.items() if now - seen > IN_USE_WINDOW]
    excess = len(fresh) + adding - MAX_SITES_KEPT
    if excess > 0:
        stale.extend(location for _, location in fresh[:excess])
    return stale


def pruned(in_use: Mapping[str, datetime], now: datetime) -> dict[str, datetime]:
    """The usage map without its stale sites."""
    drop = set(stale_sites(in_use, now))
    return {location: seen for location, seen in in_use.items() if location not in drop}


def needs_refresh(in_use: Mapping[str, datetime], location: str, seen: datetime) -> bool:
    """Whether the ledger's last-seen of a location is missing or older than USAGE_REFRESH."""
    last = in_use.get(location)
    return last is None or seen - last >= USAGE_REFRESH


# A finding seen again this long after its rollout began is a new finding (alerted again).
ROLLOUT_WINDOW = timedelta(hours=24)
# At most this many contents are remembered per workload (the most recently rolled out). A pod's images
# that do not all fit would take turns being forgotten, each delivery writing and alerting again: this is
# far above any real pod's containers (init, sidecars, ephemeral). With content names of ~130 characters a
# workload's item is about 52 KB with every bound reached (a consistent read of 13 read units; 400 KB is
# DynamoDB's limit), about 5 KB for a steady pod of 30 images, under 1 KB for a workload of 2 contents
# (tests/integration/test_rollouts_ledger.py measures them).
MAX_ROLLOUTS_KEPT = 64
# Per content: at most this many rollout starts and spec-write times (the most recent).
MAX_STARTS_KEPT = 4
MAX_INTRODUCTIONS_KEPT = 6
# Spec writes of one content closer than this to its previous kept one (the pod creations of one rollout) are
# not kept: they would add a write per delivery during a rollout, and a rollout between them is unlikely.
INTRODUCTION_SPACING = timedelta(minutes=1)
# Replays of one delivery with what the previous found, until the rollouts it starts settle (one or two).
REPLAYS = 4


@dataclass(frozen=True, slots=True)
class Rollouts:
    """The contents recently rolled out at one workload.

    `starts` maps each content to the start of its latest rollout (what other readers use). Because EKS runs
    at least two API server instances (https://docs.aws.amazon.com/eks/latest/userguide/eks-architecture.html),
    each writing its own audit log stream (`kube-apiserver-audit-<32 hex>`, as Logs Insights shows them;
    https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html), and a CloudWatch Logs
    subscription delivery carries the lines of one `logStream` (the payload has a single `logStream` field:
    https://docs.aws.amazon.com/powertools/typescript/2.16.0/api/types/_aws-lambda-powertools_parser.types.CloudWatchLogsDecode.html),
    deliveries interleave and arrive out of order. So the record also keeps, per content, its `earlier`
    rollout starts (oldest first) and its `introductions`: spec writes that did not start a rollout when they
    were processed, but would if another content's rollout turned out to lie between them and the rollout
    they joined (A, B, A again, with B delivered last). `provisional` are the kept starts a kubelet line made
    (content first seen running, its spec write not seen yet): a spec write learned later that precedes one
    takes its place. `aliases` maps such a spec write's start to the kubelet-made start it replaced: the
    rollout's findings keep the id they were raised with (one rollout, one alert, whichever stream's line
    came first). Items written before these existed read with none of them.

    `version` is the ledger's version of the record (0: none yet), so a write can be conditioned on it.
    """

    starts: Mapping[str, datetime] = field(default_factory=dict)
    version: int = 0
    earlier: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    introductions: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    provisional: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    aliases: Mapping[str, Mapping[datetime, datetime]] = field(default_factory=dict)

    def all_starts(self, content: str) -> tuple[datetime, ...]:
        """Every kept rollout start of `content`, oldest first."""
        latest = self.starts.get(content)
        return (*self.earlier.get(content, ()), latest) if latest is not None else ()

    def same_record(self, other: Rollouts) -> bool:
        """Whether both hold the same rollouts (versions aside): nothing to write."""
        return self._kept() == other._kept()

    def _kept(self) -> tuple[object, ...]:
        kept = (self.earlier, self.introductions, self.provisional, self.aliases)
        return (dict(self.starts), *(_nonempty(times) for times in kept))

    def finding_start(self, content: str, start: datetime) -> datetime:
        """The start that names `start`'s rollout in findings: the kubelet-made start it replaced, if any."""
        return self.aliases.get(content, {}).get(start, start)


def _nonempty(times: Mapping[str, Any]) -> dict[str, Any]:
    return {content: kept for content, kept in times.items() if kept}


@dataclass(frozen=True, slots=True)
class Sighting:
    """Content (image name and digest, or tag when no digest is known) seen at a workload, and how.

    `introduces` is true for spec writes made by people or their tools (workload and pod creations,
    updates, patches): only they can roll content out again. A kubelet reporting an old pod during a newer
    rollout does not, nor a controller creating pods of content already written (a CronJob's runs, a
    ReplicaSet scaled, an old ReplicaSet's pod re-created during a rollout): a rollback always comes with a
    workload write by a user.
    """

    content: str
    seen_at: datetime
    introduces: bool


def rollout_starts(
    known: Rollouts | Mapping[str, datetime], sightings: Sequence[Sighting]
) -> tuple[list[datetime], Rollouts]:
    """The start of the rollout each sighting belongs to, and the workload's rollouts afterwards.

    A sighting starts a new rollout of its content when the content is unknown, when its rollout began
    ROLLOUT_WINDOW or more before, or when it is a spec write and another content's rollout began since (a
    rollback: A, then B, then A again). The record's kept starts and spec writes are replayed with the
    batch's sightings in time order, so the grouping does not depend on which delivery came first: a late B
    between A's rollout and a later spec write of A splits A's rollout at that write, and each line joins
    the rollout that contains its time. Kept starts made by spec writes stay starts (late news can split a
    rollout, never merge two already alerted: at worst one more alert). A spec write that would start a
    rollout joins the next kept rollout of its content instead when no other content's rollout lies between
    them (a Deployment update whose pod creations another API server's stream delivered first); a kubelet
    line older than every kept rollout of its content joins the first (its spec write is older than what is
    kept).
    """
    record = known if isinstance(known, Rollouts) else Rollouts(known)
    unchanged = _within_latest_rollouts(record, sightings) if sightings else None
    if unchanged is not None:
        return [record.finding_start(s.content, t) for s, t in zip(sightings, unchanged, strict=True)], record
    replay = _Replay(record, sightings, {}, {})
    for _ in range(REPLAYS):
        if not replay.joined_early:
            break
        # A line joined a later rollout of its content before the batch's later lines were replayed: judge it
        # again knowing every rollout the batch starts and every spec write it keeps (another content's may
        # lie between, or its own rollout before).
        again = _Replay(record, sightings, replay.starts_of, replay.kept_writes())
        settled = again.starts_of == replay.starts_of and again.kept_writes() == replay.kept_writes()
        replay = again
        if settled:
            break
    after = _bounded(replay.starts_of, replay.spec_writes, replay.provisional, record.version, replay.aliases)
    found = [replay.alias(s.content, t) for s, t in zip(sightings, replay.found, strict=True)]
    return found, after


def _within_latest_rollouts(record: Rollouts, sightings: Sequence[Sighting]) -> list[datetime] | None:
    """The common case, without a replay: every line belongs to its content's latest rollout and changes
    nothing kept (a spec write close to the rollout's start or a kept spec write). None: replay."""
    found: list[datetime] = []
    for sighting in sightings:
        latest = record.starts.get(sighting.content)
        if latest is None or not timedelta(0) <= sighting.seen_at - latest < ROLLOUT_WINDOW:
            return None
        if sighting.introduces:
            if sighting.seen_at == latest and latest in record.provisional.get(sighting.content, ()):
                return None  # a spec write at a kubelet-made start makes it its own
            written = (t for t in record.introductions.get(sighting.content, ()) if latest <= t <= sighting.seen_at)
            if sighting.seen_at - max(written, default=latest) >= INTRODUCTION_SPACING:
                return None
            if any(
                latest < t < sighting.seen_at
                for c in record.starts
                if c != sighting.content
                for t in (*record.all_starts(c), *record.introductions.get(c, ()))
            ):
                return None
        found.append(latest)
    return found


class _Replay:
    """One replay, in time order, of a record's kept rollouts and spec writes with a batch's sightings.

    Kept starts made by spec writes are fixed. Starts made by kubelet lines (the first report of content
    whose spec write was not seen) are provisional: replayed as lines, so a spec write learned later that
    precedes them takes their place. `lookahead` holds rollout starts a previous replay of the same batch
    found, and `written` the spec writes it kept, for the judgement of spec writes older than a kept rollout
    of their content.
    """

    def __init__(
        self,
        record: Rollouts,
        sightings: Sequence[Sighting],
        lookahead: Mapping[str, Sequence[datetime]],
        written: Mapping[str, Sequence[datetime]],
    ) -> None:
        self.written = written
        self.provisional: set[tuple[str, datetime]] = {
            (content, moment) for content, times in record.provisional.items() for moment in times
        }
        self.starts_of: dict[str, list[datetime]] = {}
        for content in record.starts:
            fixed = [t for t in record.all_starts(content) if (content, t) not in self.provisional]
            if fixed:
                self.starts_of[content] = fixed
        # (time, content, 1 spec write | 2 other line, index in the batch or -1 for the record's own)
        entries = [(moment, content, 2, -1) for content, moment in self.provisional]
        entries.extend((moment, content, 1, -1) for content, times in record.introductions.items() for moment in times)
        entries.extend((s.seen_at, s.content, 1 if s.introduces else 2, n) for n, s in enumerate(sightings))
        self.spec_writes: dict[str, set[datetime]] = {c: set(t) for c, t in record.introductions.items()}
        self.provisional.clear()
        self.aliases: dict[str, dict[datetime, datetime]] = {c: dict(a) for c, a in record.aliases.items()}
        self.found: list[datetime] = [sighting.seen_at for sighting in sightings]
        self.joined_early = False
        for moment, content, kind, index in sorted(entries):
            start = self._start(moment, content, kind, index, lookahead)
            if kind == 1:
                self.spec_writes.setdefault(content, set()).add(moment)
            if index >= 0:
                self.found[index] = start
            elif kind == 2 and start != moment and start not in record.all_starts(content):
                # A kubelet-made start gave way to a spec write learned later: the new start inherits the
                # id its rollout's findings were raised with.
                self.aliases.setdefault(content, {}).setdefault(start, self.alias(content, moment))

    def alias(self, content: str, start: datetime) -> datetime:
        """The start that names `start`'s rollout in findings (see `Rollouts.aliases`)."""
        return self.aliases.get(content, {}).get(start, start)

    def _start(
        self, moment: datetime, content: str, kind: int, index: int, lookahead: Mapping[str, Sequence[datetime]]
    ) -> datetime:
        kept = self.starts_of.get(content, [])
        start = _latest_at_or_before(kept, moment)
        if start is not None and moment - start < ROLLOUT_WINDOW:
            # Judged from the content's last write in its rollout: what lay before it was judged with it
            # (and the newest writes are what the record keeps).
            anchor = max((t for t in self.spec_writes.get(content, ()) if start <= t < moment), default=start)
            if kind == 2 or not _another_rollout_between(self.starts_of, content, anchor, moment, self.spec_writes):
                return start
        following = next((t for t in kept if t > moment), None)
        if following is not None and kind == 2 and index >= 0 and start is None:
            # A kubelet report older than its content's kept rollouts: it joins the first, which the batch's
            # later lines may yet precede with a start of their own (judged again with them).
            self.joined_early = True
            return min([following, *(t for t in lookahead.get(content, ()) if t > moment)])
        if following is not None and kind == 1:
            # A spec write processed after a later one of the same rollout (another API server's stream came
            # first): it joins that rollout unless another content's rollout lies between them. The batch's
            # later lines may start one: judged again with them (`lookahead`).
            self.joined_early = True
            known = {c: [*lookahead.get(c, ()), *self.starts_of.get(c, ())] for c in {*lookahead, *self.starts_of}}
            writes = {
                c: [*self.written.get(c, ()), *self.spec_writes.get(c, ())] for c in {*self.written, *self.spec_writes}
            }
            if following - moment < ROLLOUT_WINDOW and not _another_rollout_between(
                known, content, moment, following, writes
            ):
                return following
        self.starts_of.setdefault(content, []).append(moment)
        self.starts_of[content].sort()
        if kind == 2:
            self.provisional.add((content, moment))
        return moment

    def kept_writes(self) -> dict[str, list[datetime]]:
        """The spec writes this replay keeps (no start, INTRODUCTION_SPACING apart), per content."""
        kept = {
            c: _spaced(sorted(times), self.starts_of.get(c, []), _others(self.starts_of, self.spec_writes, c))
            for c, times in self.spec_writes.items()
        }
        return {c: times for c, times in kept.items() if times}


def merged_rollouts(ours: Rollouts, theirs: Rollouts) -> Rollouts:
    """Two writers' rollouts of one workload as one record (`theirs` is the stored one: its version is kept).

    Starts and spec writes are united and replayed, so a spec write one writer kept becomes a rollout start
    when the other writer's record shows another content rolled out before it.
    """
    united = {c: (*theirs.all_starts(c), *ours.all_starts(c)) for c in {*ours.starts, *theirs.starts}}
    introductions = {
        c: (*theirs.introductions.get(c, ()), *ours.introductions.get(c, ()))
        for c in {*ours.introductions, *theirs.introductions}
    }
    provisional = {
        c: (*theirs.provisional.get(c, ()), *ours.provisional.get(c, ()))
        for c in {*ours.provisional, *theirs.provisional}
    }
    aliases = {c: {**ours.aliases.get(c, {}), **theirs.aliases.get(c, {})} for c in {*ours.aliases, *theirs.aliases}}
    record = Rollouts(
        {c: max(times) for c, times in united.items()},
        theirs.version,
        {c: tuple(sorted(set(times) - {max(times)})) for c, times in united.items()},
        introductions,
        provisional,
        aliases,
    )
    return rollout_starts(record, ())[1]


def _latest_at_or_before(starts: Sequence[datetime], moment: datetime) -> datetime | None:
    return next((start for start in reversed(starts) if start <= moment), None)


def _another_rollout_between(
    starts_of: Mapping[str, Sequence[datetime]],
    content: str,
    start: datetime,
    moment: datetime,
    spec_writes: Mapping[str, Iterable[datetime]],
) -> bool:
    """Whether another content's rollout began, or another content was written, strictly between `start`
    and `moment`.

    Another content's kept spec write counts as a rollout between: it is kept as a plain write only because
    it would join a later rollout of its content, which it does only if nothing lies between them. Two such
    writes (A, B, A, B split across two streams: B at 10:10, A at 10:20) would otherwise each wait for the
    other and both stay plain writes for good. Strictly: rollouts of two contents at the same instant have
    no order, and whichever is replayed first must not decide (a record replayed alone must come out
    unchanged, or every delivery would write it).

    Nor does another content's rollout begun by the same spec write as one of `content`'s (same instant):
    `content` was written again beside it, not replaced by it (an unchanged sidecar deployed with each new
    main image: A1+S, A2+S, A1+S is no rollback to S).
    """
    own = set(spec_writes.get(content, ()))
    return any(
        start < other < moment and other not in own
        for times_of in (starts_of, spec_writes)
        for name, times in times_of.items()
        if name != content
        for other in times
    )


def _bounded(
    starts_of: Mapping[str, list[datetime]],
    spec_writes: Mapping[str, set[datetime]],
    provisional: set[tuple[str, datetime]],
    version: int,
    aliases: Mapping[str, Mapping[datetime, datetime]],
) -> Rollouts:
    """The rollouts to keep: contents rolled out within ROLLOUT_WINDOW of the newest rollout (at most
    MAX_ROLLOUTS_KEPT), per content its newest MAX_STARTS_KEPT starts in that window and its newest
    MAX_INTRODUCTIONS_KEPT spec writes in it that are no start themselves, INTRODUCTION_SPACING apart."""
    newest = max((times[-1] for times in starts_of.values() if times), default=None)
    if newest is None:
        return Rollouts(version=version)
    recent = sorted(
        ((times[-1], content) for content, times in starts_of.items() if newest - times[-1] < ROLLOUT_WINDOW),
        reverse=True,
    )[:MAX_ROLLOUTS_KEPT]
    starts: dict[str, datetime] = {}
    earlier: dict[str, tuple[datetime, ...]] = {}
    introductions: dict[str, tuple[datetime, ...]] = {}
    by_kubelet: dict[str, tuple[datetime, ...]] = {}
    renamed: dict[str, dict[datetime, datetime]] = {}
    for _, content in recent:
        kept = [start for start in starts_of[content] if newest - start < ROLLOUT_WINDOW][-MAX_STARTS_KEPT:]
        starts[content] = kept[-1]
        if len(kept) > 1:
            earlier[content] = tuple(kept[:-1])
        # Spec writes before the first kept start are kept only while no older start was dropped: one that
        # joined a dropped rollout would start a rollout of its own when replayed.
        floor = kept[0] if kept[0] != starts_of[content][0] else newest - ROLLOUT_WINDOW
        writes = sorted(t for t in spec_writes.get(content, ()) if t > floor)
        spaced = _spaced(writes, kept, _others(starts_of, spec_writes, content))
        if spaced:
            introductions[content] = tuple(spaced[-MAX_INTRODUCTIONS_KEPT:])
        unconfirmed = tuple(start for start in kept if (content, start) in provisional)
        if unconfirmed:
            by_kubelet[content] = unconfirmed
        named = {start: alias for start, alias in aliases.get(content, {}).items() if start in kept}
        if named:
            renamed[content] = named
    return Rollouts(starts, version, earlier, introductions, by_kubelet, renamed)


def _spaced(writes: Sequence[datetime], starts: Sequence[datetime], others: Collection[datetime]) -> list[datetime]:
    """Spec writes that are no start, each INTRODUCTION_SPACING after the last start or kept write before it,
    and every write made with another content's rollout start or spec write (`others`), however close: it
    tells that the other content did not replace this one (and a rollout start writes the record anyway).

    Writes before the first start are kept too: a late rollout of other content between one and the first
    start makes it a rollout of its own.
    """
    kept: list[datetime] = []
    for moment in writes:
        anchor = max(
            (t for t in (*starts, *kept[-1:]) if t <= moment),
            default=None,
        )
        if moment in starts:
            continue
        if anchor is None or moment - anchor >= INTRODUCTION_SPACING or moment in others:
            kept.append(moment)
    return kept


def _others(
    starts_of: Mapping[str, Sequence[datetime]], spec_writes: Mapping[str, Iterable[datetime]], content: str
) -> set[datetime]:
    """Every rollout start and spec write of contents other than `content`."""
    return {
        t for times_of in (starts_of, spec_writes) for name, times in times_of.items() if name != content for t in times
    }
