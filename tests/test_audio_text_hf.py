"""Qwen2-Audio and AST through their real loading and inference code, with tiny random weights.

The models are built from the real config classes, saved with save_pretrained and
loaded back by the backends (``model_path``), so everything except the trained
weights is the code path the paper profile runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers

from avsbridge.audio_text import ALM_PROMPTS, AUDIO_TEXTERS, prompt_text
from avsbridge.audio_text.base import select_tags, tags_to_text
from avsbridge.backends import model_folder_digest as weights_digest

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


# --- wiring: what reaches the model, and how its output becomes the text -------------


class _Spy:
    """Wraps a callable, recording each call's arguments and result."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.target(*args, **kwargs)
        self.calls.append((args, kwargs, result))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def test_ast_tags_each_audible_window_from_its_own_scores(
    tiny_ast: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texter = AUDIO_TEXTERS.create("ast", model_path=tiny_ast, device="cpu", top_k=2, threshold=0.0)
    extractor, model = _Spy(texter.extractor), _Spy(texter.model)
    monkeypatch.setattr(texter, "extractor", extractor)
    monkeypatch.setattr(texter, "model", model)
    loud, noise = two_windows()
    windows = [loud, np.zeros(16_000, np.float32), noise]
    texts = texter.describe(windows, prompt_text("metadata"))
    # the silent window never reaches the model; the others go in order, at 16 kHz
    ((batch,), extractor_kwargs, features) = extractor.calls[0]
    assert extractor_kwargs["sampling_rate"] == 16_000
    assert len(batch) == 2
    np.testing.assert_array_equal(batch[0], loud)
    np.testing.assert_array_equal(batch[1], noise)
    (_, model_kwargs, output) = model.calls[0]
    torch.testing.assert_close(model_kwargs["input_values"], features["input_values"])
    # each text is the tags of that window's own row of sigmoid(logits)
    scores = torch.sigmoid(output.logits).numpy()
    want = [tags_to_text(select_tags(row, TINY_LABELS, 2, 0.0), "metadata") for row in scores]
    assert texts == [want[0], "", want[1]]
    assert texts[0].startswith("labels: ")


def test_qwen2audio_sends_each_window_with_the_prompt_and_decodes_new_tokens(
    tiny_qwen2audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texter = AUDIO_TEXTERS.create(
        "qwen2audio", model_path=tiny_qwen2audio, device="cpu", max_new_tokens=3, batch_size=2
    )
    processor, generate = _Spy(texter.processor), _Spy(texter.model.generate)
    monkeypatch.setattr(texter, "processor", processor)
    monkeypatch.setattr(texter.model, "generate", generate)
    windows = two_windows()
    prompt = prompt_text("soundof")
    texts = texter.describe(windows, prompt)
    (_, proc_kwargs, inputs) = processor.calls[0]
    assert proc_kwargs["sampling_rate"] == 16_000
    assert proc_kwargs["text"] == [texter._chat_text(prompt)] * 2
    assert prompt in proc_kwargs["text"][0]
    for sent, window in zip(proc_kwargs["audio"], windows, strict=True):
        np.testing.assert_array_equal(sent, window)
    (_, gen_kwargs, generated) = generate.calls[0]
    assert gen_kwargs["do_sample"] is False and gen_kwargs["max_new_tokens"] == 3
    torch.testing.assert_close(gen_kwargs["input_ids"], inputs["input_ids"])
    # the text is the decoded continuation only (never the echoed prompt)
    n_in = inputs["input_ids"].shape[1]
    decoded = texter.processor.batch_decode(generated[:, n_in:], skip_special_tokens=True)
    assert texts == [" ".join(t.split()) for t in decoded]
    assert all(prompt not in t for t in texts)
