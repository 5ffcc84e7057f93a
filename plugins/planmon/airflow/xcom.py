"""Reading the results of mapped tasks from XCom."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def mapped_results(values: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The non-empty results of a mapped task's instances (those that finished).

    By index, not by iteration: iterating Airflow's lazy XCom sequence asks for one item past the
    end and logs that miss as an error in every run.
    """
    if values is None:
        return []
    if isinstance(values, Sequence):
        return [value for value in (values[i] for i in range(len(values))) if value]
    return [value for value in values if value]
