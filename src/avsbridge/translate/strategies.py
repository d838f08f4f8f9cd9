"""Prompt building and answer parsing for the four Table 4 strategies.

Input format (OpenAVS Appendix A): one ``<frameN>`` block per frame; with prompt
consistency each block holds one ``<expK>`` block per ALM prompt (K = 1..n).
Without frame consistency every frame is its own LLM call (a single ``<frame0>``
block); with frame consistency all frames of a clip go in ONE call, which is what
keeps Table 4's cost column equal between the two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from avsbridge.translate.prompts import StrategyPrompt, get_strategy

STRATEGIES: tuple[str, ...] = ("none", "pc", "fc", "pcfc")

# Answers that mean "nothing is sounding": they become the empty prompt (silence).
SILENCE_ANSWERS = frozenset(
    {
        "",
        "none",
        "silence",
        "silent",
        "nothing",
        "no sound",
        "no sounds",
        "no object",
        "no objects",
        "no sound-producing object",
        "no sound-producing objects",
        "no sounding object",
        "no sounding objects",
        "n/a",
        "na",
        "null",
        "unknown",
    }
)
_LEADING_FILLERS = re.compile(
    r"^(?:(?:the|a|an|some)\s+)?(?:sounds?|noises?)\s+(?:of|from)\s+|^(?:the|a|an|some)\s+",
    re.IGNORECASE,
)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_OPEN_TAG_RE = re.compile(r"<answer>", re.IGNORECASE)
_CLOSE_TAG_RE = re.compile(r"</answer>", re.IGNORECASE)
_STRAY_TAG_RE = re.compile(r"</?answer>", re.IGNORECASE)
_ITEM_SPLIT_RE = re.compile(r"[,;\n]")
_EDGE_PUNCT = " \t\r\n.!?:\"'`*()[]{}"


@dataclass(frozen=True)
class TranslationRequest:
    """One LLM call: which frames of the clip it answers, and its exact prompts."""

    frame_indices: tuple[int, ...]
    system: str
    user: str


def _clean_alm_text(text: str) -> str:
    """ALM text inside a block: stripped, and unable to open or close our tags."""
    return text.strip().replace("<", "(").replace(">", ")")


def build_user_text(frames: Sequence[Sequence[str]], prompt_consistency: bool) -> str:
    """User message for ``frames[i][k]`` = text of frame i from ALM prompt k.

    Frames are numbered from 0 within the message (as in Appendix A), whatever
    their index in the clip.
    """
    blocks: list[str] = []
    for frame_no, texts in enumerate(frames):
        if prompt_consistency:
            inner = "\n".join(
                f"<exp{k}>{_clean_alm_text(text)}</exp{k}>" for k, text in enumerate(texts, start=1)
            )
        else:
            if len(texts) != 1:
                raise ValueError(
                    f"without prompt consistency a frame holds one ALM text, got {len(texts)}"
                )
            inner = _clean_alm_text(texts[0])
        blocks.append(f"<frame{frame_no}>\n{inner}\n</frame{frame_no}>")
    return "\n".join(blocks)


def build_requests(
    strategy: str, texts_by_prompt: Sequence[Sequence[str]]
) -> list[TranslationRequest]:
    """All LLM calls a clip needs under ``strategy``.

    ``texts_by_prompt[k][i]`` is the ALM text of frame i for ALM prompt k; strategies
    without prompt consistency accept exactly one prompt.
    """
    spec: StrategyPrompt = get_strategy(strategy)
    if not texts_by_prompt:
        raise ValueError("no ALM texts given")
    n_frames = len(texts_by_prompt[0])
    if any(len(texts) != n_frames for texts in texts_by_prompt):
        raise ValueError("ALM prompts disagree on the number of frames")
    if not spec.prompt_consistency and len(texts_by_prompt) != 1:
        raise ValueError(
            f"strategy {strategy!r} uses exactly one ALM prompt, got {len(texts_by_prompt)}"
        )
    frames = [[texts[i] for texts in texts_by_prompt] for i in range(n_frames)]
    if spec.frame_consistency:
        user = build_user_text(frames, spec.prompt_consistency)
        return [TranslationRequest(tuple(range(n_frames)), spec.system, user)]
    return [
        TranslationRequest((i,), spec.system, build_user_text([frames[i]], spec.prompt_consistency))
        for i in range(n_frames)
    ]


def normalise_answer(answer: str) -> str:
    """Turn one ``<answer>`` body into the VFM prompt: comma-separated object names.

    Lowercased, "sound of"/articles dropped, duplicates removed in order; answers
    meaning silence ("none", "silence", "") give "" (an empty prompt = no mask).
    """
    names: list[str] = []
    for raw_item in _ITEM_SPLIT_RE.split(_STRAY_TAG_RE.sub(" ", answer)):
        item = " ".join(raw_item.lower().split()).strip(_EDGE_PUNCT)
        previous = None
        while previous != item:
            previous = item
            item = _LEADING_FILLERS.sub("", item).strip(_EDGE_PUNCT)
        if item in SILENCE_ANSWERS or item in names:
            continue
        names.append(item)
    return ", ".join(names)


def parse_answers(text: str, n_frames: int) -> list[str] | None:
    """Normalised answers, one per frame in order; None when the reply is malformed.

    Malformed means: no ``<answer>`` tags at all, unbalanced tags, or a count other
    than ``n_frames``.
    The caller then falls back to the raw ALM text and records it, never an empty
    prompt in disguise.
    """
    if n_frames < 1 or not text:
        return None
    bodies = _ANSWER_RE.findall(text)
    opens = len(_OPEN_TAG_RE.findall(text))
    closes = len(_CLOSE_TAG_RE.findall(text))
    if not len(bodies) == opens == closes == n_frames:
        return None
    return [normalise_answer(body) for body in bodies]


def reply_problem(text: str, n_frames: int) -> str:
    """Why :func:`parse_answers` rejected ``text`` (for the fallback record)."""
    if not text or not text.strip():
        return "empty reply"
    found = len(_ANSWER_RE.findall(text))
    if found == 0:
        return "no <answer>...</answer> tags in the reply"
    opens, closes = len(_OPEN_TAG_RE.findall(text)), len(_CLOSE_TAG_RE.findall(text))
    if opens != closes or opens != found:
        return f"unbalanced <answer> tags ({opens} open, {closes} close)"
    return f"wrong number of answers: got {found}, expected {n_frames}"
