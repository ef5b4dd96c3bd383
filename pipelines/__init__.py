"""Benchmark pipelines: one small definition file each, plus the runner that writes a run folder."""
from __future__ import annotations

import importlib

from oceandl.errors import InputError

from .runner import PIPELINES, Pipeline, RunContext, apply_overrides, markdown_table, resolve_fast, run_pipeline

__all__ = ["PIPELINES", "Pipeline", "RunContext", "apply_overrides", "markdown_table", "resolve_fast",
           "run_pipeline", "get_pipeline"]


def get_pipeline(name: str) -> Pipeline:
    """The :class:`Pipeline` registered as ``name``."""
    if name not in PIPELINES:
        raise InputError(f"unknown benchmark {name!r}; valid: {', '.join(PIPELINES)}")
    return importlib.import_module(PIPELINES[name]).PIPELINE
