#!/usr/bin/env bash
# `make image`: build the admission webhook's image (admission/Dockerfile) and push it to the stack's
# ECR repository (its AdmissionImageRepositoryUri output), with the first container engine that answers.
#
# Environment (make passes it): STACK_NAME (or TAGWARDEN_STACK_NAME), IMAGE_TAG (default: the package
# version; the repository's tags are immutable, so a tag is pushed once), PLATFORM (e.g. linux/arm64 for
# Graviton nodes; default: the engine's own), REGION, CONTAINER_ENGINES (default: docker podman buildah),
# PY and TAGWARDEN (the venv's python and command).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
TAGWARDEN=${TAGWARDEN:-.venv/bin/tagwarden}
engines=${CONTAINER_ENGINES:-docker podman buildah}

# An engine counts only if it answers: a docker CLI without a reachable daemon cannot build.
engine=""
tried=()
for candidate in $engines; do
    if ! command -v "$candidate" >/dev/null 2>&1; then
        tried+=("$candidate: not installed")
        continue
    fi
    if "$candidate" info >/dev/null 2>&1; then
        engine=$candidate
        break
    fi
    tried+=("$candidate: installed, but '$candidate info' fails (no daemon or no permission)")
done
if [ -z "$engine" ]; then
    echo "make image: no container engine answers on this machine, so the image cannot be built here." >&2
    for line in ${tried[@]+"${tried[@]}"}; do echo "  $line" >&2; done
    echo "  Run 'make image STACK_NAME=<stack>' where docker, podman or buildah works (a workstation, a CI" >&2
    echo "  runner with Docker), or build admission/Dockerfile there from the repository root and push it to" >&2
    echo "  the stack's repository: '.venv/bin/tagwarden admission repository --stack-name <stack>' prints it." >&2
    echo "  'make lint' still checks the Dockerfile (hadolint)." >&2
    exit 2
fi

stack=${STACK_NAME:-${TAGWARDEN_STACK_NAME:-}}
if [ -z "$stack" ]; then
    echo "make image: name the stack whose repository receives the image: make image STACK_NAME=<stack>" >&2
    exit 2
fi
region_args=()
if [ -n "${REGION:-}" ]; then region_args=(--region "$REGION"); fi

# "${a[@]+"${a[@]}"}": bash before 4.4 (macOS's 3.2) calls an empty array unbound under `set -u`.
repository=$("$TAGWARDEN" admission repository --stack-name "$stack" ${region_args[@]+"${region_args[@]}"})
tag=${IMAGE_TAG:-$("$PY" -c 'import tagwarden; print(tagwarden.__version__)')}
registry=${repository%%/*}
image="$repository:$tag"
platform_args=()
if [ -n "${PLATFORM:-}" ]; then platform_args=(--platform "$PLATFORM"); fi

echo "==> $engine: building $image"
# ECR's password for the registry (12 hours), from the same credentials as the stack lookup.
"$PY" - "$registry" <<'PYTHON' | "$engine" login --username AWS --password-stdin "$registry" >/dev/null
import base64
import sys

import boto3

region = sys.argv[1].split(".")[3]  # <account>.dkr.ecr.<region>.amazonaws.com
token = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
print(base64.b64decode(token["authorizationToken"]).decode().split(":", 1)[1])
PYTHON
if [ "$engine" = buildah ]; then
    buildah build ${platform_args[@]+"${platform_args[@]}"} --file admission/Dockerfile --tag "$image" .
else
    "$engine" build ${platform_args[@]+"${platform_args[@]}"} --file admission/Dockerfile --tag "$image" .
fi
"$engine" push "$image"

digest=$("$PY" - "$repository" "$tag" <<'PYTHON'
import sys

import boto3

registry, _, name = sys.argv[1].partition("/")
ecr = boto3.client("ecr", region_name=registry.split(".")[3])
[detail] = ecr.describe_images(
    registryId=registry.split(".")[0], repositoryName=name, imageIds=[{"imageTag": sys.argv[2]}]
)["imageDetails"]
print(detail["imageDigest"])
PYTHON
)
echo "==> pushed $repository@$digest"
echo "Next: .venv/bin/tagwarden admission manifests --stack-name $stack ${REGION:+--region $REGION }--image $repository@$digest | kubectl apply -f -"
