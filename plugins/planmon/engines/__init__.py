"""Engine adapters, one module per engine, looked up by name (``get_engine("postgres")``)."""

from __future__ import annotations

import importlib
from typing import Any

from planmon.errors import EngineError, EngineErrorReason
from planmon.model import ENGINE_NAMES

ENGINE_MODULES = {
    "sqlserver": "planmon.engines.sqlserver",
    "postgres": "planmon.engines.postgres",
    "mysql": "planmon.engines.mysql",
}


def get_engine(name: str) -> Any:
    """The adapter class of engine ``name``; an unknown name is an error listing the known ones."""
    module_name = ENGINE_MODULES.get(name)
    if module_name is None:
        raise EngineError(
            f"unknown engine {name!r}",
            reason=EngineErrorReason.UNKNOWN_ENGINE,
            hint=f"use one of: {', '.join(ENGINE_NAMES)}",
        )
    return importlib.import_module(module_name).Adapter
