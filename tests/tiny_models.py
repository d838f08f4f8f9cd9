"""Random-weight GroundingDINO / SAM / SAM2 / transformers models from the real configs.

Each builder constructs the model with the library's own build code and config
classes, then saves it in the official on-disk format (``{"model": sd}`` .pth
for GroundingDINO and SAM 2, a bare state dict for SAM, ``save_pretrained``
folders for transformers), so the backends load it through their normal path.
``full=False`` shrinks the dims that the code lets shrink (tests); ``full=True``
keeps the published architecture (``bench/vfm_throughput.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A WordPiece vocabulary: BERT's special tokens, GroundingDINO's separators, a few nouns.
TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    ".",
    "?",
    ",",
    "a",
    "the",
    "dog",
    "cat",
    "man",
    "woman",
    "guitar",
    "piano",
    "car",
    "bird",
    "baby",
    "helicopter",
    "play",
    "##ing",
    "##s",
]

# SAM encoder dims for segment_anything's _build_sam (img size stays 1024: fixed there).
TINY_SAM_ENCODER: dict[str, Any] = {
    "encoder_embed_dim": 32,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "encoder_global_attn_indexes": [1],
}

# Hydra overrides shrinking sam2.1_hiera_l to a 5 M-parameter Hiera (image size stays 1024:
# SAM2ImagePredictor hard-codes the 1024-input feature sizes).
TINY_SAM2_OVERRIDES = [
    "++model.image_encoder.trunk.embed_dim=8",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.dim_feedforward=32",
    "++model.memory_encoder.fuser.num_layers=1",
]

# GroundingDINO: hidden_dim must stay 256 (the text position embedding hard-codes it) and
# the Swin-T backbone dims are fixed by its name; layers, heads, FFN and queries shrink.
TINY_GDINO_OVERRIDES = {
    "enc_layers": 1,
    "dec_layers": 1,
    "nheads": 4,
    "dim_feedforward": 64,
    "num_queries": 6,
}


def _tokenizer(vocab_file: Path) -> Any:
    from transformers import BertTokenizer

    words = vocab_file.read_text(encoding="utf-8").splitlines()
    return BertTokenizer(vocab={word: i for i, word in enumerate(words)}, do_lower_case=True)


def write_bert(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A BERT text encoder folder (config, weights, WordPiece vocab + tokenizer files)."""
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    _tokenizer(vocab_file).save_pretrained(folder)
    if full:
        config = BertConfig()  # bert-base-uncased dims
    else:
        config = BertConfig(
            vocab_size=len(TINY_VOCAB),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=300,
        )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    return folder


def write_gdino_config(path: Path, full: bool = False) -> Path:
    """The packaged GroundingDINO_SwinT_OGC.py SLConfig, with tiny overrides appended."""
    from avsbridge.segment.gdino_sam import default_gdino_config

    text = default_gdino_config().read_text(encoding="utf-8")
    if not full:
        text += "\n# tiny test model\n" + "".join(
            f"{key} = {value!r}\n" for key, value in TINY_GDINO_OVERRIDES.items()
        )
    path.write_text(text, encoding="utf-8")
    return path


def write_gdino_checkpoint(path: Path, config: Path, text_encoder: Path, seed: int = 0) -> Path:
    """Random GroundingDINO weights for ``config`` saved as ``{"model": state_dict}``."""
    import torch
    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig

    from avsbridge.segment.gdino_sam import _bert_compat

    args = SLConfig.fromfile(str(config))
    args.device = "cpu"
    args.text_encoder_type = str(text_encoder)
    torch.manual_seed(seed)
    with _bert_compat():
        model = build_model(args)
    torch.save({"model": model.state_dict()}, path)
    return path


def write_sam_checkpoint(path: Path, full: bool = False, seed: int = 0) -> Path:
    """Random SAM weights (ViT-H when ``full``) saved as a bare state dict, like the official."""
    import torch
    from segment_anything import sam_model_registry
    from segment_anything.build_sam import _build_sam

    torch.manual_seed(seed)
    sam = sam_model_registry["vit_h"]() if full else _build_sam(**TINY_SAM_ENCODER)
    torch.save(sam.state_dict(), path)
    return path


def write_sam2_checkpoint(
    path: Path,
    config: str = "configs/sam2.1/sam2.1_hiera_l.yaml",
    full: bool = False,
    seed: int = 0,
) -> Path:
    """Random SAM 2.1 weights from the hydra config saved as ``{"model": state_dict}``."""
    import torch
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    overrides = [] if full else list(TINY_SAM2_OVERRIDES)
    model = build_sam2(config, None, device="cpu", hydra_overrides_extra=overrides)
    torch.save({"model": model.state_dict()}, path)
    return path


def write_hf_gdino(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A transformers GroundingDINO folder (model + processor) from GroundingDinoConfig."""
    import torch
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    tokenizer = _tokenizer(vocab_file)
    if full:
        config = GroundingDinoConfig()  # Swin-T + bert-base: grounding-dino-tiny's architecture
        image_processor = GroundingDinoImageProcessor()
    else:
        config = GroundingDinoConfig(
            backbone_config=SwinConfig(
                embed_dim=16,
                depths=[1, 1, 1, 1],
                num_heads=[1, 1, 2, 2],
                window_size=7,
                out_indices=[2, 3, 4],
            ),
            text_config=BertConfig(
                vocab_size=len(TINY_VOCAB),
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
            ),
            d_model=32,
            num_queries=6,
            encoder_layers=1,
            decoder_layers=2,  # >= 2: the shared bbox-embed tying needs a second layer
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
        )
        image_processor = GroundingDinoImageProcessor(
            size={"shortest_edge": 128, "longest_edge": 160}
        )
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        folder
    )
    return folder


def write_hf_sam(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A transformers SAM folder (model + processor); ``full`` is sam-vit-huge's architecture."""
    import torch
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamVisionConfig,
    )

    folder.mkdir(parents=True, exist_ok=True)
    if full:
        config = SamConfig(
            vision_config=SamVisionConfig(
                hidden_size=1280,
                num_hidden_layers=32,
                num_attention_heads=16,
                global_attn_indexes=[7, 15, 23, 31],
            )
        )
    else:
        # Prompt / decoder width stays 256: the shared positional embedding fixes it.
        config = SamConfig(
            vision_config=SamVisionConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                global_attn_indexes=[1],
                mlp_dim=64,
            ),
            mask_decoder_config=SamMaskDecoderConfig(
                mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
            ),
        )
    torch.manual_seed(seed)
    SamModel(config).save_pretrained(folder)
    SamProcessor(SamImageProcessor()).save_pretrained(folder)
    return folder


LLAMA_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def write_llama_chat(folder: Path, seed: int = 0) -> Path:
    """A random-initialised LlamaForCausalLM + word-level chat tokenizer, as an HF folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = ["<unk>", "<s>", "</s>", "<answer>", "</answer>", "dog", "car", "wind", "engine", "a"]
    words += [f"w{i}" for i in range(64 - len(words))]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = LLAMA_CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


# --- optical flow (RAFT, Perceiver IO) ---------------------------------------------------

# deepmind/optical-flow-perceiver's config.json (the architecture keys; the rest default).
PERCEIVER_FLOW_FULL: dict[str, Any] = {
    "d_latents": 512,
    "d_model": 322,
    "num_latents": 2048,
    "num_blocks": 1,
    "num_self_attends_per_block": 24,
    "num_self_attention_heads": 16,
    "num_cross_attention_heads": 1,
    "cross_attention_shape_for_attention": "kv",
    "self_attention_widening_factor": 1,
    "cross_attention_widening_factor": 1,
    "train_size": [368, 496],
}
# The 64-band Fourier encodings and the 54-channel patch stack are fixed in
# PerceiverForOpticalFlow; latents, depth and the training size shrink.
PERCEIVER_FLOW_TINY: dict[str, Any] = {
    **PERCEIVER_FLOW_FULL,
    "d_latents": 16,
    "num_latents": 8,
    "num_self_attends_per_block": 1,
    "num_self_attention_heads": 1,
    "train_size": [16, 24],
}


def write_raft_checkpoint(path: Path, model: str = "raft_small", seed: int = 0) -> Path:
    """A random-initialised torchvision RAFT state dict (the official .pth format)."""
    import torch
    import torchvision.models.optical_flow as tv_flow

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(getattr(tv_flow, model)(weights=None, progress=False).state_dict(), path)
    return path


def write_perceiver_flow(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A random-initialised PerceiverForOpticalFlow saved with save_pretrained."""
    import torch
    from transformers import PerceiverConfig, PerceiverForOpticalFlow

    torch.manual_seed(seed)
    config = PerceiverConfig(**(PERCEIVER_FLOW_FULL if full else PERCEIVER_FLOW_TINY))
    PerceiverForOpticalFlow(config).save_pretrained(folder)
    return folder


def write_clap(folder: Path, tokenizer: Any) -> Path:
    """A tiny random ClapModel (real config classes, unfused extractor) + processor around a
    RoBERTa ``tokenizer`` the caller built, saved with ``save_pretrained``."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 64,
        "projection_hidden_size": 32,
    }
    audio = {
        "patch_embeds_hidden_size": 16,
        "hidden_size": 32,
        "depths": [1, 1],
        "num_attention_heads": [2, 2],
        "window_size": 8,
        "projection_hidden_size": 32,
    }
    config = ClapConfig(text_config=text, audio_config=audio, projection_dim=16)
    ClapModel(config).save_pretrained(folder)
    # the unfused CLAP checkpoints' extractor: repeat-pad short clips, one mel channel
    extractor = ClapFeatureExtractor(truncation="rand_trunc")
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
