"""The "w/o LLM" backend: the raw ALM text goes to the VFM unchanged (Table 3)."""

from __future__ import annotations

import re
from typing import Any

from avsbridge.translate.backends import TRANSLATORS, Completion

_FRAME_RE = re.compile(r"<frame(\d+)>\n?(.*?)\n?</frame\1>", re.DOTALL)
_EXP_RE = re.compile(r"<exp(\d+)>(.*?)</exp\1>", re.DOTALL)


class NoLLMTranslator:
    """No language model at all; the runner never calls it and counts no calls.

    ``complete`` still answers (each frame's first ALM text wrapped in ``<answer>``)
    so the backend honours the interface when used directly.
    """

    passthrough = True

    def complete(self, system: str, user: str) -> Completion:
        answers = []
        for _, body in _FRAME_RE.findall(user):
            exps = _EXP_RE.findall(body)
            text = exps[0][1] if exps else body
            answers.append(f"<answer>{text.strip()}</answer>")
        return Completion("\n".join(answers), prompt_tokens=0, completion_tokens=0, latency_s=0.0)

    def identity(self) -> dict[str, Any]:
        return {"backend": "none"}


@TRANSLATORS.register("none", mem_mb=300)
def make_none_translator() -> NoLLMTranslator:
    return NoLLMTranslator()
