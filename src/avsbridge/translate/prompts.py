"""The published OpenAVS translator prompts, loaded from package data.

The prompts are data (``resources/translator_prompts.yaml``) rather than string
literals so the exact text sent to the LLM is reviewable in one cited place and
enters the cache key verbatim.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

from avsbridge.io import parse_yaml

PROMPTS_RESOURCE = "translator_prompts.yaml"


@dataclass(frozen=True)
class StrategyPrompt:
    """One Table 4 strategy: its Appendix A system prompt and its two switches."""

    name: str
    section: str
    system: str
    prompt_consistency: bool
    frame_consistency: bool


@functools.cache
def _load() -> dict[str, Any]:
    text = (resources.files("avsbridge") / "resources" / PROMPTS_RESOURCE).read_text("utf-8")
    data = parse_yaml(text, f"avsbridge/resources/{PROMPTS_RESOURCE}")
    if not isinstance(data, dict) or "strategies" not in data:
        raise ValueError(f"{PROMPTS_RESOURCE}: no 'strategies' mapping")
    return data


def strategy_prompts() -> dict[str, StrategyPrompt]:
    """All strategies by config name (none, pc, fc, pcfc)."""
    return {
        name: StrategyPrompt(
            name=name,
            section=str(entry["section"]),
            system=str(entry["system"]),
            prompt_consistency=bool(entry["prompt_consistency"]),
            frame_consistency=bool(entry["frame_consistency"]),
        )
        for name, entry in _load()["strategies"].items()
    }


def get_strategy(name: str) -> StrategyPrompt:
    prompts = strategy_prompts()
    try:
        return prompts[name]
    except KeyError:
        raise ValueError(
            f"unknown translation strategy {name!r} (known: {', '.join(sorted(prompts))})"
        ) from None


def citation() -> dict[str, str]:
    """Where the prompts come from (paper, appendix section) for provenance records."""
    return {str(k): str(v) for k, v in _load()["citation"].items()}


def price_per_1m_tokens(model: str) -> tuple[float, float] | None:
    """(input, output) US$ per 1M tokens for a priced model; None when unknown."""
    table = _load().get("prices", {}).get("usd_per_1m_tokens", {})
    entry = table.get(model)
    if entry is None:
        return None
    return float(entry["input"]), float(entry["output"])
