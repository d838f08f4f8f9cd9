"""The published questions (SSP Fig. 7) and the dense-caption prompt (TeSO §3.2.1), as data.

The texts live in ``resources/mllm_prompts.yaml`` with their citation; this module
only reads and checks them, so no question is ever retyped in code.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

QUESTION_IDS = ("a", "b", "c", "d")
PROMPTS_FILE = "mllm_prompts.yaml"


@functools.cache
def _prompts() -> dict[str, Any]:
    text = resources.files("avsbridge.resources").joinpath(PROMPTS_FILE).read_text("utf-8")
    data = yaml.safe_load(text)
    q1 = data["ssp_questions"]["q1"]
    if tuple(q1) != QUESTION_IDS:
        raise ValueError(f"resources/{PROMPTS_FILE}: ssp_questions.q1 must list a, b, c, d")
    return data


def q1(question: str) -> str:
    """Q1 variant ``question`` (a-d) of SSP Fig. 7."""
    table = _prompts()["ssp_questions"]["q1"]
    if question not in table:
        raise KeyError(f"unknown SSP question {question!r} (known: {', '.join(QUESTION_IDS)})")
    return str(table[question])


def q2() -> str:
    """SSP's Q2 (Fig. 7), asked in the same conversation after Q1 and its answer A1."""
    return str(_prompts()["ssp_questions"]["q2"])


def ssp_citation() -> str:
    return " ".join(str(_prompts()["ssp_questions"]["citation"]).split())


def scene_prompt() -> str:
    """TeSO's dense-caption prompt (Section 3.2.1)."""
    return str(_prompts()["teso_scene"]["prompt"])


def scene_citation() -> str:
    return " ".join(str(_prompts()["teso_scene"]["citation"]).split())


def check_questions(questions: list[str] | tuple[str, ...]) -> list[str]:
    """The params' question list, validated (unknown ids name the known ones)."""
    unknown = [q for q in questions if q not in QUESTION_IDS]
    if unknown or not questions:
        raise ValueError(
            f"mllm_answers.questions: {unknown or 'empty'} (known: {', '.join(QUESTION_IDS)})"
        )
    return list(dict.fromkeys(questions))
