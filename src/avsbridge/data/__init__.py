"""Benchmark adapters: official AVSBench layouts, V3 splits, zero-shot lists, demo data."""

from avsbridge.data.records import Clip

__all__ = ["Clip"]
