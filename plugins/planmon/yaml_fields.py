"""Field types shared by the YAML files DBAs write (alert routing, probes): lenient where YAML is.

``OneOrMany``: a single string where a list is expected is a list of one (``to: dba@x`` reads as
``to: [dba@x]``). ``TextMapping``: tag values written as numbers or booleans (``tier: 1``) are text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BeforeValidator


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _text_mapping(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return value


OneOrMany = BeforeValidator(_one_or_many)
TextMapping = BeforeValidator(_text_mapping)
