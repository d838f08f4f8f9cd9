"""The three ALM prompts of OpenAVS (paper §3.3, §4.1.3, Table 3), keyed by config name.

Config files name a prompt by key (``soundof`` / ``metadata`` / ``caption``); the
text sent to the ALM is looked up here so the three published strings live in one
place. ``caption`` is the paper's default (§4.1.3).
"""

from __future__ import annotations

ALM_PROMPTS: dict[str, str] = {
    "soundof": "This is a sound of",
    "metadata": "Generate metadata",
    "caption": "Generate audio caption",
}

DEFAULT_PROMPT_KEY = "caption"


def prompt_text(prompt_key: str) -> str:
    """The ALM prompt text for a config key; unknown keys fail loudly with the known ones."""
    try:
        return ALM_PROMPTS[prompt_key]
    except KeyError:
        known = ", ".join(sorted(ALM_PROMPTS))
        raise KeyError(f"unknown ALM prompt key {prompt_key!r} (known: {known})") from None


def prompt_key_of(text: str) -> str:
    """Inverse lookup: which config key a prompt text belongs to (taggers template by key)."""
    for key, value in ALM_PROMPTS.items():
        if value.strip().lower() == text.strip().lower():
            return key
    known = ", ".join(repr(v) for v in ALM_PROMPTS.values())
    raise KeyError(f"prompt {text!r} is not one of the ALM prompts ({known})")
