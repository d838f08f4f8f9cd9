"""Zero-shot stage ``zeroshot_image``: one image -> a caption (BAaV: BLIP).

Its own artifact family: VCap+ACls reads image captions, and a change of strategy or
audio model never re-runs the image captioner. Backends register here.
"""

from avsbridge.registry import Registry

IMAGE_CAPTIONERS: Registry = Registry("zeroshot_image", "avsbridge.zeroshot_image")
