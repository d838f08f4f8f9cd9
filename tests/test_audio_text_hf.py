"""Qwen2-Audio and AST through their real loading and inference code, with tiny random weights.

The models are built from the real config classes, saved with save_pretrained and
loaded back by the backends (``model_path``), so everything except the trained
weights is the code path the paper profile runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsbridge.audio_text import ALM_PROMPTS, AUDIO_TEXTERS, prompt_text
from avsbridge.backends import model_folder_digest as weights_digest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
]
TINY_LABELS = ["Speech", "Dog", "Bark", "Bird", "Animal", "Music", "Silence"]


def tiny_bpe_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE trained here on a few sentences, with Qwen's chat/audio tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=QWEN_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ["system You are a helpful assistant.", "user Audio 1:", *ALM_PROMPTS.values()]
    corpus += ["a dog barks while a person speaks", "a bird sings"]
    tokenizer.train_from_iterator(corpus, trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL[1:],
    )


@pytest.fixture(scope="module")
def tiny_qwen2audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-qwen2audio")
    tokenizer = tiny_bpe_tokenizer()
    processor = transformers.Qwen2AudioProcessor(
        feature_extractor=transformers.WhisperFeatureExtractor(feature_size=128),
        tokenizer=tokenizer,
    )
    config = transformers.Qwen2AudioConfig(
        audio_config={
            "d_model": 16,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "num_mel_bins": 128,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 1024,
        },
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(0)
    transformers.Qwen2AudioForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_ast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-ast")
    config = transformers.ASTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_mel_bins=128,
        max_length=100,
        id2label=dict(enumerate(TINY_LABELS)),
        label2id={label: i for i, label in enumerate(TINY_LABELS)},
    )
    torch.manual_seed(0)
    transformers.ASTForAudioClassification(config).save_pretrained(folder)
    transformers.ASTFeatureExtractor(max_length=100).save_pretrained(folder)
    return folder


def two_windows() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    return [
        (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        rng.normal(0, 0.1, 16_000).astype(np.float32),
    ]


def test_qwen2audio_tiny_generates_through_real_loading(tiny_qwen2audio: Path) -> None:
    texter = AUDIO_TEXTERS.create(
        "qwen2audio", model_path=tiny_qwen2audio, device="cpu", max_new_tokens=4, batch_size=2
    )
    assert texter.sample_rate == 16_000
    chat = texter._chat_text(prompt_text("caption"))
    assert "<|AUDIO|>" in chat and chat.rstrip().endswith("assistant")
    assert "Generate audio caption" in chat
    texts = texter.describe(two_windows(), prompt_text("caption"))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert texter.describe(two_windows(), prompt_text("caption")) == texts  # greedy: repeatable
    # batch size does not change the answers (left padding)
    single = AUDIO_TEXTERS.create(
        "qwen2audio", model_path=tiny_qwen2audio, device="cpu", max_new_tokens=4, batch_size=1
    )
    assert single.describe(two_windows(), prompt_text("caption")) == texts
    identity = texter.identity()
    assert identity["backend"] == "qwen2audio"
    assert identity["weights_sha256"] == weights_digest(tiny_qwen2audio)
    assert identity["decoding"]["max_new_tokens"] == 4


def test_ast_tiny_tags_through_real_loading(tiny_ast: Path) -> None:
    texter = AUDIO_TEXTERS.create("ast", model_path=tiny_ast, device="cpu", top_k=2)
    assert texter.labels == TINY_LABELS
    windows = [*two_windows(), np.zeros(16_000, dtype=np.float32)]
    forms = {key: texter.describe(windows, prompt_text(key)) for key in ALM_PROMPTS}
    for texts in forms.values():
        assert len(texts) == 3
        assert texts[2] == "", "silent window must give empty text"
    for text in forms["soundof"][:2]:
        if text:  # random weights may score everything below the threshold
            assert set(text.split(", ")) <= {label.lower() for label in TINY_LABELS}
    for text in forms["metadata"][:2]:
        assert text == "" or text.startswith("labels: ")
    assert {key: texter.describe(windows, prompt_text(key)) for key in ALM_PROMPTS} == forms
    scores = texter.scores(two_windows())
    assert scores.shape == (2, len(TINY_LABELS))
    assert np.all((scores >= 0) & (scores <= 1))
    assert texter.identity()["weights_sha256"] == weights_digest(tiny_ast)
    # with no threshold every audible window gets exactly top_k tags, unless Silence wins
    eager = AUDIO_TEXTERS.create("ast", model_path=tiny_ast, device="cpu", top_k=2, threshold=0.0)
    for row, text in zip(
        scores, eager.describe(two_windows(), prompt_text("soundof")), strict=True
    ):
        if TINY_LABELS[int(np.argmax(row))] == "Silence":
            assert text == ""
        else:
            assert len(text.split(", ")) == 2, text


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        AUDIO_TEXTERS.create("ast", model_path=tmp_path, device="cpu")
