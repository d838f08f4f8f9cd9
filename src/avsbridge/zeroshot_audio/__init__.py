"""Zero-shot stage ``zeroshot_audio``: one whole audio file -> tags (with scores) and a caption.

Its own artifact family, so every strategy that reads audio tags or an audio caption
(classification, captioning, ACap+VCls) shares one run of the audio models: changing
the strategy re-runs only ``zeroshot_query``. Backends register here.
"""

from avsbridge.registry import Registry

AUDIO_ANALYSERS: Registry = Registry("zeroshot_audio", "avsbridge.zeroshot_audio")
