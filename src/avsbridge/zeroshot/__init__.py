"""BAaV zero-shot chain: samples, shards and the five stage jobs.

The models live in their own stage packages, each with a registry:
``avsbridge.zeroshot_audio`` (audio tags + caption), ``avsbridge.zeroshot_image``
(image caption), ``avsbridge.zeroshot_query`` (the five strategies, phrase
matchers, noun phrases) and ``avsbridge.ris`` (referring image segmentation).
This package only knows the artifact layout (:mod:`.samples`, :mod:`.jobs`).
"""
