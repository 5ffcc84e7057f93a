"""Engines, one package per engine (``sqlserver``, ``postgres``, ``mysql``), each exposing one
:class:`Engine` object looked up by name: ``get_engine("postgres")``.

The engine owns everything planmon knows about talking to that kind of server: sessions for a purpose
(collect, probe, remediate), identifier quoting from (schema, name), driver error classification and
scrubbing, the collector adapter and plan capture, the probe session, the remediation proposer and the
statement runner. ``base`` is the contract (records, protocols, session policy); ``_base`` the plumbing
every engine shares. An engine's package is imported only when it is asked for (its driver with it).
"""

from __future__ import annotations

import importlib

from planmon.engines._base import Engine
from planmon.errors import EngineError, EngineErrorReason
from planmon.model import ENGINE_NAMES

__all__ = ["ENGINE_PACKAGES", "Engine", "get_engine"]

ENGINE_PACKAGES: dict[str, str] = {name: f"planmon.engines.{name}" for name in ENGINE_NAMES}


def get_engine(name: str) -> Engine:
    """The engine object named ``name``; an unknown name is an error listing the known ones."""
    package = ENGINE_PACKAGES.get(name)
    if package is None:
        raise EngineError(
            f"unknown engine {name!r}",
            reason=EngineErrorReason.UNKNOWN_ENGINE,
            hint=f"use one of: {', '.join(ENGINE_NAMES)}",
        )
    engine = importlib.import_module(package).ENGINE
    assert isinstance(engine, Engine)
    return engine
