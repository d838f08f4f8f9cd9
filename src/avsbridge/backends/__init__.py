"""What every stage's backends share: device choice and model-folder digests.

One place, so a GPU job on any stage honours ``CUDA_VISIBLE_DEVICES`` the same
way and a model folder is identified the same way in every provenance record.
"""

from avsbridge.backends.device import resolve_device
from avsbridge.backends.files import hf_snapshot_dir, model_folder_digest

__all__ = ["hf_snapshot_dir", "model_folder_digest", "resolve_device"]
