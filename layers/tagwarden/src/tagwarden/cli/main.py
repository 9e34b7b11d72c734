"""The `tagwarden` command line: history, check, pin, backfill, replay, preflight, posture.

Commands stay thin: parse the arguments, ask `Runtime` for the ledger or a service, print. The work is
in the core (`services.ledger_queries`, `services.backfill`, the push guard, scan recorder and audit
watcher), and heavy imports (boto3, the services) happen inside the commands, so `--help` is quick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption

from tagwarden.cli.admission import admission_app
from tagwarden.cli.errors import EXIT_CODES_HELP, ExitCode, exit_codes, usage_error
from tagwarden.cli.posture import posture
from tagwarden.cli.prepush import prepush
from tagwarden.cli.render import (
    alert_json,
    backfill_json,
    check_json,
    console,
    counts_line,
    emit_json,
    history_json,
    history_table,
)
from tagwarden.cli.runtime import GlobalOptions, Runtime, discard_metrics, quiet_core
from tagwarden.domain.images import ImageReference, is_ecr_registry, parse_reference, validate_repository

if TYPE_CHECKING:
    from tagwarden.cli.runtime import AlertRoute
    from tagwarden.domain.alerts import Alert
    from tagwarden.events.audit import Home
    from tagwarden.services.audit_watcher import AuditWatcher
    from tagwarden.services.push_guard import PushGuard
    from tagwarden.services.scan_recorder import ScanRecorder
    from tagwarden.services.trail_watcher import TrailWatcher

GLOBAL = "Global options"
REFERENCE_FORMAT = "<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:<tag>][@<digest>]"
# Shown under every command's help, where the global options themselves are not listed.
GLOBAL_OPTIONS_NOTE = (
    "Global options (--json, --stack-name, --table, --profile, --region, --endpoint-url) go before or after "
    "the command: see `tagwarden --help`."
)


class MissingOptionValueError(ValueError):
    """A global option that takes a value ends the command line."""

    def __init__(self, option: str) -> None:
        super().__init__(f"Option '{option}' requires an argument.")


def hoist_global_options(args: Sequence[str], takes_value: Mapping[str, bool]) -> list[str]:
    """The arguments with the global options found after the command moved before it.

    click parses a group's options only before the subcommand; moving them keeps one declaration (the
    callback's) while `tagwarden history IMAGE --table T` means what `tagwarden --table T history IMAGE`
    does. `takes_value` maps each global option name to whether a value follows it. Nothing after `--` moves.

    Raises:
        MissingOptionValueError: an option that takes a value is the last argument.
    """
    args = list(args)
    position = 0
    # The command is the first argument that is neither an option nor an option's value.
    while position < len(args) and args[position] != "--" and args[position].startswith("-"):
        name, inline, _ = args[position].partition("=")
        position += 2 if takes_value.get(name) and not inline else 1
    if position >= len(args) or args[position] == "--":
        return args
    before, command, after = args[:position], args[position], args[position + 1 :]
    hoisted: list[str] = []
    kept: list[str] = []
    index = 0
    while index < len(after):
        token = after[index]
        if token == "--":  # noqa: S105 - the end of options, not a secret
            kept.extend(after[index:])
            break
        name, inline, _ = token.partition("=")
        if name in takes_value:
            width = 2 if takes_value[name] and not inline else 1
            if index + width > len(after):
                # Hoisted alone, it would take the command's name as its value.
                raise MissingOptionValueError(name)
            hoisted.extend(after[index : index + width])
            index += width
        else:
            kept.append(token)
            index += 1
    return [*before, *hoisted, command, *kept]


class TagwardenGroup(TyperGroup):
    """The command group, taking its global options before or after the command."""

    # `ctx` is the click Context that typer vendors and does not export (`typer.Context` is a subclass).
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Parse the group's arguments after moving the global options found after the command before it."""
        takes_value = {
            name: not param.is_flag
            for param in self.params
            if isinstance(param, TyperOption) and param.rich_help_panel == GLOBAL
            for name in (*param.opts, *param.secondary_opts)
        }
        try:
            hoisted = hoist_global_options(args, takes_value)
        except MissingOptionValueError as error:
            ctx.fail(str(error))
        return super().parse_args(ctx, hoisted)


app = typer.Typer(
    name="tagwarden",
    cls=TagwardenGroup,
    help=(
        "Ask the Tagwarden ledger where ECR tags pointed and which digests passed their scans; "
        "seed it from ECR; replay recorded events."
    ),
    epilog=(
        f"{EXIT_CODES_HELP} Global options go before or after the command. "
        "The ledger comes from --table, or from the LedgerTableName output of --stack-name. "
        "--endpoint-url applies to every AWS client (CloudFormation, DynamoDB, ECR, SNS). "
        "The tag policy and fail severity used by backfill and replay come from PROTECTED_TAG_PATTERNS, "
        "MUTABLE_TAG_PATTERNS and FAIL_SEVERITY, and the registries replay checks besides ECR from "
        "EXTRA_MONITORED_REGISTRIES: with --stack-name, the stack's parameters (as for the functions); else the "
        "command's environment."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Machine output: JSON on stdout, no colours, no progress bar.", rich_help_panel=GLOBAL),
]
StackNameOption = Annotated[
    str | None,
    typer.Option(
        "--stack-name",
        envvar="TAGWARDEN_STACK_NAME",
        help="Deployed Tagwarden stack: its outputs LedgerTableName (and AlertsTopicArn) are read with DescribeStacks.",
        rich_help_panel=GLOBAL,
    ),
]
TableOption = Annotated[
    str | None,
    typer.Option(
        "--table", envvar="TAGWARDEN_TABLE", help="Ledger table name, instead of --stack-name.", rich_help_panel=GLOBAL
    ),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile", help="AWS profile (default: AWS_PROFILE or the default credential chain).", rich_help_panel=GLOBAL
    ),
]
RegionOption = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="AWS region of the stack, table and registry (default: AWS_REGION or the profile's).",
        rich_help_panel=GLOBAL,
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help=(
            "Send every AWS request (CloudFormation, DynamoDB, ECR, SNS) to this URL, e.g. LocalStack or a moto "
            "server. Without it, `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` apply as in any AWS SDK."
        ),
        rich_help_panel=GLOBAL,
    ),
]
TopicOption = Annotated[
    str | None,
    typer.Option(
        "--topic-arn",
        envvar="TAGWARDEN_TOPIC_ARN",
        help="Alerts topic to publish raised alerts to (default: the stack's AlertsTopicArn output).",
    ),
]
PublishOption = Annotated[
    bool,
    typer.Option(
        "--publish/--no-publish",
        help=(
            "Publish raised alerts when a topic is known. Unpublished alerts are recorded, listed as 'would alert' "
            "and published by a later run with a topic that raises them again (same events, same ledger state)."
        ),
    ),
]
ImageArgument = Annotated[
    str,
    typer.Argument(
        metavar="IMAGE",
        help=(
            "ECR image reference: registry host, repository, and a tag, a digest or both, "
            "e.g. `111122223333.dkr.ecr.eu-west-1.amazonaws.com/shop/api:1.4.0`."
        ),
    ),
]


@app.callback()
def global_options(
    ctx: typer.Context,
    json_output: JsonOption = False,
    stack_name: StackNameOption = None,
    table: TableOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointOption = None,
) -> None:
    """Put the run's `Runtime`, built from the global options, on the context for the command."""
    # A flag on the command line wins over the other ledger option set in the environment
    # (TAGWARDEN_STACK_NAME=prod with --table T means the table T, not "both").
    if stack_name and table:
        if _from_environment(ctx, "stack_name"):
            stack_name = None
        elif _from_environment(ctx, "table"):
            table = None
    ctx.obj = Runtime(GlobalOptions(json_output, stack_name, table, profile, region, endpoint_url))


def _from_environment(ctx: typer.Context, parameter: str) -> bool:
    """Whether the option's value came from its environment variable (typer's bundled click says which)."""
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name == "ENVIRONMENT"


def _runtime(ctx: typer.Context) -> Runtime:
    """The run's runtime, which the global options callback put on the context."""
    runtime = ctx.find_object(Runtime)
    if runtime is None:  # pragma: no cover - the callback runs before every command
        raise RuntimeError("no Runtime on the context: the global options callback did not run")
    return runtime


def _reference(text: str) -> ImageReference:
    """An ECR image reference (the ledger only holds ECR images), or a usage error naming the format."""
    reference = parse_reference(text)
    if not is_ecr_registry(reference.name.registry):
        raise usage_error(f"not an ECR image reference: {text!r} (expected {REFERENCE_FORMAT})")
    return reference


@app.command(epilog=GLOBAL_OPTIONS_NOTE)
def history(
    ctx: typer.Context,
    reference: Annotated[
        str,
        typer.Argument(metavar="REPO:TAG", help="The tag: ECR registry host, repository and tag (`:latest` if none)."),
    ],
) -> None:
    """Show a tag's timeline, oldest first.

    Each push or delete with its time, digest, previous digest, event id and whether it arrived late, and
    the scan state and verdict its digest has now. The table shows digests by their first 12 hex digits (as
    `docker images` does) and wraps long cells to fit the terminal; `--json` has every value in full. A tag
    the ledger has never seen is a usage error (exit 2), not a failed check.
    """
    from tagwarden.domain.tags import TagRef

    runtime = _runtime(ctx)
    json_output = runtime.options.json_output
    with exit_codes(runtime):
        parsed = _reference(reference)
        if parsed.tag is None:
            raise usage_error(f"history needs a tag: {reference!r} names a digest only")
        tag = TagRef(parsed.name, parsed.tag)
        entries = runtime.queries().tag_history(tag)
        if entries is None:
            # Not "check failed" (exit 1, which CI gates act on): the question named something the ledger
            # has never seen, like an unknown table or repository.
            raise usage_error(
                f"unknown tag: {tag} is not in {runtime.ledger_description()} (no push or delete recorded; "
                "check the registry, repository and tag)"
            )
        if json_output:
            emit_json(history_json(entries))
        else:
            console().print(history_table(tag, entries))


@app.command(epilog=GLOBAL_OPTIONS_NOTE)
def check(
    ctx: typer.Context,
    image: ImageArgument,
) -> None:
    """Gate a deployment on the image's scan (exit 0 pass, 1 refused).

    Passes when the image's digest (for a tag, its current digest) has a passing completed scan. Otherwise
    prints the reason and exits 1: unknown tag or digest, tag deleted, unscanned, failed scan, failing
    verdict, undecided verdict, or tag moved since its last scan (IMAGE names tag and digest, and the tag now
    names another).
    """
    runtime = _runtime(ctx)
    json_output = runtime.options.json_output
    with exit_codes(runtime):
        result = runtime.queries().check(_reference(image))
        if json_output:
            emit_json(check_json(result))
        else:
            typer.echo(result.reason)
        if not result.passed:
            raise typer.Exit(int(ExitCode.REFUSED))


@app.command(epilog=GLOBAL_OPTIONS_NOTE)
def pin(
    ctx: typer.Context,
    image: ImageArgument,
) -> None:
    """Print the image pinned to its scanned digest, for deployments.

    Prints registry/repository@sha256:... for the tag's current digest if it has a passing scan; refuses
    (exit 1, the reason on stderr, nothing on stdout) for the same reasons as `check`.
    """
    runtime = _runtime(ctx)
    json_output = runtime.options.json_output
    with exit_codes(runtime):
        result = runtime.queries().check(_reference(image))
        if json_output:
            emit_json(check_json(result))
        elif result.pinned is not None:
            typer.echo(result.pinned)
        else:
            typer.echo(f"tagwarden: refused: {result.reason}", err=True)
        if not result.passed:
            raise typer.Exit(int(ExitCode.REFUSED))


@app.command(epilog=GLOBAL_OPTIONS_NOTE)
def backfill(
    ctx: typer.Context,
    repositories: Annotated[
        list[str] | None,
        typer.Argument(metavar="REPOSITORY", help="ECR repositories to seed, e.g. shop/api (default: all)."),
    ] = None,
    topic_arn: TopicOption = None,
    publish: PublishOption = True,
) -> None:
    """Seed the ledger from ECR, through the functions' own services.

    Reads the registry of the session's account and region: every tag becomes a push at the image's push
    time (or at the time of the run, when the ledger has the tag on other content since a later event: a
    missed move, which becomes the tag's current pointer), an untagged image an untagged push, a finished
    scan a scan report, each fed to the push guard or the scan recorder. Synthetic event ids are stable, so
    re-running is safe: tags and scans a run recorded come back as duplicates or already known (untagged
    images are refreshed each run); facts the ledger already holds from live events are skipped. Alerts go
    to the alerts topic only with --topic-arn or --stack-name; otherwise they are recorded unpublished and
    listed as 'would alert', and a later run with a topic publishes those its facts raise again.
    """
    from rich.progress import Progress

    from tagwarden.services.backfill import Backfill, BackfillReport

    runtime = _runtime(ctx)
    json_output = runtime.options.json_output
    with exit_codes(runtime), quiet_core():
        names = [validate_repository(name) for name in repositories or []]
        route = runtime.alert_route(topic_arn, publish)
        push_guard, scan_recorder = runtime.services(route)
        job = Backfill(runtime.registry(), runtime.ledger, push_guard, scan_recorder)
        report = BackfillReport()
        progress_console = console(stderr=True)
        with Progress(console=progress_console, disable=json_output or not progress_console.is_terminal) as progress:
            found = job.repositories(names)
            report.repositories = len(found)
            listing = progress.add_task("Listing repositories", total=len(found))
            images = []
            for repository in found:
                images.extend(job.images(repository))
                progress.advance(listing)
            seeding = progress.add_task("Seeding the ledger", total=len(images))
            for image in images:
                report.add(job.seed(image))
                discard_metrics()
                progress.advance(seeding)
        withheld = route.collector.alerts if route.collector is not None else []
        if json_output:
            emit_json(backfill_json(report, route.publishes, withheld))
            return
        typer.echo(
            f"Backfilled {report.repositories} repositories, {report.images} images into {runtime.ledger_description()}"
        )
        typer.echo(f"  tags:     {counts_line(report.tags)}")
        typer.echo(f"  untagged: {counts_line(report.untagged)}")
        typer.echo(f"  scans:    {counts_line(report.scans)}")
        _print_alerts(route, report.alerts, withheld)


class _ReplayServices:
    """The functions' services for a replay, on one alert route, built when the first event needs one.

    All at once, so that a configuration error (tag policy, fail severity, extra registries) stops the run
    before its first write.
    """

    def __init__(self, runtime: Runtime, topic_arn: str | None, publish: bool) -> None:
        self._runtime = runtime
        self._topic_arn = topic_arn
        self._publish = publish
        self._built: tuple[PushGuard, ScanRecorder, AuditWatcher] | None = None
        self._trail: TrailWatcher | None = None
        self.route: AlertRoute | None = None

    def _services(self) -> tuple[PushGuard, ScanRecorder, AuditWatcher]:
        if self._built is None:
            self.route = self._runtime.alert_route(self._topic_arn, self._publish)
            push_guard, scan_recorder = self._runtime.services(self.route)
            self._built = push_guard, scan_recorder, self._runtime.audit_watcher(self.route)
        return self._built

    def push_guard(self) -> PushGuard:
        """The push guard."""
        return self._services()[0]

    def scan_recorder(self) -> ScanRecorder:
        """The scan recorder."""
        return self._services()[1]

    def audit_watcher(self) -> AuditWatcher:
        """The audit watcher."""
        return self._services()[2]

    def trail_watcher(self) -> TrailWatcher:
        """The trail watcher (CloudTrail's ECR calls), on the same alert route."""
        if self._trail is None:
            self._services()
            assert self.route is not None
            self._trail = self._runtime.trail_watcher(self.route)
        return self._trail

    def audit_home(self) -> Home:
        """The stack's account and region (clusters of other accounts are named `account:region:name`)."""
        return self._runtime.audit_home()


@app.command(epilog=GLOBAL_OPTIONS_NOTE)
def replay(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE",
            help=(
                "Recorded events: one event, a JSON list of events, or JSON lines, per file. EventBridge events, "
                "CloudWatch Logs subscription envelopes or their decoded data, raw Kubernetes audit lines."
            ),
        ),
    ],
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="NAME",
            help=(
                "EKS cluster that raw Kubernetes audit lines come from (required when a file has some): they are "
                "checked as the subscription on /aws/eks/NAME/cluster would deliver them."
            ),
        ),
    ] = None,
    topic_arn: TopicOption = None,
    publish: PublishOption = True,
) -> None:
    """Feed recorded events through the functions' own parsing and services.

    ECR Image Action, Pull Through Cache Action and Replication Action events go to the push guard, ECR Image
    Scan, Inspector2 Scan and Inspector2 Finding events to the scan recorder, ECR API calls via CloudTrail to
    the trail watcher, each parsed with its function's event model. EKS audit logs go to the audit watcher, parsed
    as its function parses a CloudWatch Logs subscription delivery: an envelope as Lambda receives it, its
    decoded data (encoded again first), or raw audit lines (with --cluster; each run of consecutive lines
    of a file is one delivery of up to 10,000 lines). Prints each event's outcome and alert ids (for audit
    deliveries, lines checked, observations, lines skipped and why), and exits 1 if any event was invalid
    or unsupported. Alerts and deployment findings are published as by backfill.
    """
    from tagwarden.cli.replay import deliveries, read_events, validate_cluster
    from tagwarden.cli.replay import replay as replay_event

    runtime = _runtime(ctx)
    json_output = runtime.options.json_output
    with exit_codes(runtime), quiet_core():
        # Every file is read before anything is written, so a typo in the last file changes nothing.
        cluster_name = validate_cluster(cluster) if cluster is not None else None
        events = [item for path in files for item in deliveries(path, read_events(path), cluster_name)]
        services = _ReplayServices(runtime, topic_arn, publish)
        replayed = []
        for origin, event in events:
            replayed.append(replay_event(origin, event, services))
            discard_metrics()
        route = services.route
        withheld = route.collector.alerts if route is not None and route.collector is not None else []
        published = (
            [alert for item in replayed for alert in item.alerts] if route is not None and route.publishes else []
        )
        if json_output:
            emit_json(
                {
                    "events": [item.as_dict() for item in replayed],
                    "alerts": {"published": published, "would_alert": [alert_json(a) for a in withheld]},
                }
            )
        else:
            for item in replayed:
                alerts = f" alerts: {', '.join(item.alerts)}" if item.alerts else ""
                typer.echo(f"{item.origin} {item.function or '-'} {item.event_id or '-'}: {item.outcome}{alerts}")
            if route is not None:
                _print_alerts(route, [a for item in replayed for a in item.alerts], withheld)
        if not all(item.ok for item in replayed):
            raise typer.Exit(int(ExitCode.REFUSED))


@app.command(epilog=GLOBAL_OPTIONS_NOTE)
def preflight(
    ctx: typer.Context,
    clusters: Annotated[
        str | None,
        typer.Option(
            "--clusters",
            metavar="NAMES",
            help="Comma-separated EKS cluster names, as for the EksClusterNames parameter (default: the stack's).",
        ),
    ] = None,
) -> None:
    """Check that the EKS clusters are ready for the stack's audit log subscriptions (exit 0 ready, 1 not).

    For each cluster, in the stack's region: the cluster exists, its control-plane audit logging is on, its
    log group /aws/eks/NAME/cluster exists, and the group has a free subscription-filter slot (CloudWatch Logs
    allows two; a filter the stack already owns there does not count). Run it before `sam deploy` with new
    clusters: a cluster that is not ready makes the deploy roll back. Without --clusters, --stack-name's
    EksClusterNames parameter is read with DescribeStacks.
    """
    from tagwarden.cli.preflight import (
        CLUSTERS_PARAMETER,
        check_clusters,
        parse_cluster_names,
        readiness_json,
        readiness_lines,
        stack_filter_name,
    )

    runtime = _runtime(ctx)
    stack_name = runtime.options.stack_name
    with exit_codes(runtime):
        if clusters is not None:
            names = parse_cluster_names(clusters)
        elif stack_name is not None:
            if CLUSTERS_PARAMETER not in runtime.stack_parameters:
                raise usage_error(f"stack {stack_name!r} has no {CLUSTERS_PARAMETER} parameter: not a Tagwarden stack?")
            names = parse_cluster_names(runtime.stack_parameters[CLUSTERS_PARAMETER])
        else:
            raise usage_error("which clusters? pass --clusters, or --stack-name to read its EksClusterNames")
        filter_name = stack_filter_name(stack_name) if stack_name is not None else None
        results = check_clusters(runtime.client("eks"), runtime.client("logs"), names, filter_name)
        if runtime.options.json_output:
            emit_json(readiness_json(results))
        else:
            for line in readiness_lines(results, runtime.region):
                typer.echo(line)
        if not all(result.ready for result in results):
            raise typer.Exit(int(ExitCode.REFUSED))


app.command(epilog=GLOBAL_OPTIONS_NOTE)(prepush)  # before a push: would it move a tag that must not move
app.command(epilog=GLOBAL_OPTIONS_NOTE)(posture)


def _print_alerts(route: AlertRoute, raised: list[str], withheld: list[Alert]) -> None:
    if route.publishes:
        target = f"published to {route.topic_arn}"
        typer.echo(f"  alerts:   {len(raised)} {target}" if raised else "  alerts:   none")
        return
    if not withheld:
        typer.echo("  alerts:   none")
        return
    why = "--no-publish" if route.topic_arn else "no --topic-arn or --stack-name"
    typer.echo(f"  alerts:   {len(withheld)} would alert (not published: {why})")
    # Most severe first, as everywhere else; alerts of one severity keep the order they were raised in.
    for alert in sorted(withheld, key=lambda alert: -alert.severity.rank):
        typer.echo(f"  would alert: {alert.alert_id} {alert.type.value} {alert.severity.value} {alert.summary}")


app.add_typer(admission_app)  # tagwarden admission manifests|repository (issue 11)
