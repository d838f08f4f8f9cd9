"""Zero-shot stage ``zeroshot_query``: a strategy turns cached audio/image text into a RIS query.

The five BAaV strategies are data (:mod:`.strategies`); the phrase matchers that play
CLAP (audio side) and CLIP (image side) register in :data:`MATCHERS`; noun phrases
come from spaCy (:mod:`.nouns`). Audio tags/captions and image captions are read from
the ``zeroshot_audio`` / ``zeroshot_image`` artifacts, never recomputed here.
"""

from avsbridge.registry import Registry

MATCHERS: Registry = Registry("zeroshot_query", "avsbridge.zeroshot_query")
