"""Load a function's real `app.py` the way Lambda does: a fresh module with the environment set first."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from unittest import mock

from tests.support.template import REPO_ROOT


@dataclass
class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools reads."""

    function_name: str = "tagwarden-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:111122223333:function:tagwarden-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


Handler = Callable[[dict[str, Any]], Any]
"""A handler bound to a test Lambda context: call it with an event, get what lambda_handler returned."""


def load_function_module(function: str, environment: Mapping[str, str]) -> ModuleType:
    """Import `functions/<function>/app.py` as a new module (its cold start runs again)."""
    path = REPO_ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"tagwarden_function_{function}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, environment):
        spec.loader.exec_module(module)
    return module


@contextmanager
def environment(values: Mapping[str, str]) -> Any:
    """Temporarily set environment variables."""
    with mock.patch.dict(os.environ, values):
        yield
