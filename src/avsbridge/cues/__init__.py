"""TeSO text cues: an LLM collects the potential sounding objects of each frame's dense
description (CoT few-shot / one-shot templates), or spaCy's noun parser does (TeSO_n).

The LLM is any translator backend (:data:`avsbridge.translate.TRANSLATORS`: SmolLM2 on
the demo, LLaMA-2 or an OpenAI-compatible server on the paper profile): the stage's
registry is the translator registry, so every call shares its cache, retries and
failure policy.
"""
