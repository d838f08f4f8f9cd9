"""TeSO's text-cue prompts (CoT few-shot, one-shot) built from data, and their parser.

The template texts live in ``resources/teso_cue_templates.yaml``: a reconstruction,
said there, because Fig. 3's text is not in the paper's extraction. ``cot`` shows all
examples (few-shot, TeSO), ``oneshot`` the first (TeSO_p); ``noun`` is not an LLM
template but spaCy's nouns (:mod:`avsbridge.cues.nouns`, TeSO_n).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

import yaml

from avsbridge.translate.strategies import normalise_answer

TEMPLATES_FILE = "teso_cue_templates.yaml"
TEMPLATE_IDS = ("cot", "oneshot", "noun")
NOUN_PARSER = "noun"
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)


@functools.cache
def template_data() -> dict[str, Any]:
    text = resources.files("avsbridge.resources").joinpath(TEMPLATES_FILE).read_text("utf-8")
    data = yaml.safe_load(text)
    if tuple(data["templates"]) != TEMPLATE_IDS:
        raise ValueError(f"resources/{TEMPLATES_FILE}: templates must be {TEMPLATE_IDS}")
    return data


def check_templates(templates: Any) -> list[str]:
    names = list(templates or [])
    unknown = [t for t in names if t not in TEMPLATE_IDS]
    if unknown or not names:
        raise ValueError(
            f"text_cues.templates: {unknown or 'empty'} (known: {', '.join(TEMPLATE_IDS)})"
        )
    return list(dict.fromkeys(names))


def cue_prompt(template: str, description: str) -> tuple[str, str]:
    """(system, user) of one LLM cue request for one frame's description."""
    data = template_data()
    spec = data["templates"][template]
    if template == NOUN_PARSER:
        raise ValueError("the noun template is spaCy's noun parser, not an LLM prompt")
    system = " ".join(str(data["instruction"]).split())
    blocks = []
    for i, ex in enumerate(data["examples"][: int(spec["shots"])], start=1):
        blocks.append(
            f"Example {i}\nDescription: {ex['description']}\n"
            f"Reasoning: {ex['reasoning']}\n<answer>{ex['answer']}</answer>"
        )
    user = "\n\n".join(blocks) + f"\n\nNow this frame.\nDescription: {description.strip()}"
    return system, user


def parse_cues(reply: str) -> list[str] | None:
    """The cue nouns of the reply's last ``<answer>``; [] for an explicit "none";
    None when malformed (no tags, or an empty answer body)."""
    bodies = _ANSWER_RE.findall(reply or "")
    if not bodies or not bodies[-1].strip():
        return None
    names = normalise_answer(bodies[-1])
    return [n for n in names.split(", ") if n] if names else []


def reply_problem(reply: str) -> str:
    if not (reply or "").strip():
        return "empty reply"
    if not _ANSWER_RE.findall(reply):
        return "no <answer>...</answer> tags in the reply"
    return "empty <answer></answer>"


def citation() -> str:
    return " ".join(str(template_data()["citation"]).split())
