"""`tagwarden posture`: every repository's tag mutability, whether protected tags can move, and the exact
`aws ecr put-image-tag-mutability` command that closes each gap (exit 1 when there is one)."""

from __future__ import annotations

import typer

from tagwarden.cli.errors import ExitCode, exit_codes
from tagwarden.cli.render import console, emit_json
from tagwarden.cli.runtime import Runtime, detection_config


def posture(ctx: typer.Context) -> None:
    """Show whether each ECR repository's settings let protected tags be overwritten (exit 0 none, 1 some).

    Reads every repository of the session's account and region (DescribeRepositories, paginated; progress on
    stderr): its tag mutability, its exclusion filters, and whether a tag matching PROTECTED_TAG_PATTERNS (the
    stack's with --stack-name) can be overwritten. For each gap it prints the `aws ecr put-image-tag-mutability`
    command that closes it within ECR's limits (at most 5 wildcard exclusion filters), keeping the mutable tag
    patterns ECR can express (such as latest) mutable. Needs ecr:DescribeRepositories only.
    """
    from rich.progress import Progress

    from tagwarden.services.posture import assess

    runtime = ctx.find_object(Runtime)
    assert runtime is not None, "the global options callback puts the Runtime on the context"
    json_output = runtime.options.json_output
    with exit_codes(runtime):
        policy = detection_config(runtime.policy_environment).tag_policy
        registry = runtime.registry()
        progress_console = console(stderr=True)
        with Progress(console=progress_console, disable=json_output or not progress_console.is_terminal) as progress:
            reading = progress.add_task("Reading repositories", total=None)
            found = []
            for item in assess(registry.repository_settings(), policy):
                found.append(item)
                progress.advance(reading)
        found.sort(key=lambda item: (item.image.registry, item.image.repository))
        gaps = [item for item in found if item.exposure.movable]
        if json_output:
            emit_json(
                {
                    "protected_tag_patterns": list(policy.protected),
                    "gaps": len(gaps),
                    "repositories": [
                        {
                            "registry": item.image.registry,
                            "repository": item.image.repository,
                            "image_tag_mutability": item.setting.mutability.value,
                            "exclusion_filters": list(item.setting.filters),
                            "protected_tags_can_move": item.exposure.movable,
                            "exposed_patterns": list(item.exposure.exposed_patterns),
                            "reason": item.exposure.reason,
                            "fix": item.command,
                        }
                        for item in found
                    ],
                }
            )
        else:
            typer.echo(f"Protected tag patterns: {', '.join(policy.protected) or '(none)'}")
            for item in found:
                verdict = "PROTECTED TAGS CAN MOVE" if item.exposure.movable else "ok"
                typer.echo(f"  {item.image.repository}  {item.setting.describe()}  {verdict}: {item.exposure.reason}")
                if item.command is not None:
                    typer.echo(f"    fix: {item.command}")
            typer.echo(f"{len(found)} repositories, {len(gaps)} with protected tags that can be overwritten")
        if gaps:
            raise typer.Exit(int(ExitCode.REFUSED))
