"""BAaV Inversion (avsbridge.zeroshot_query.inversion): pseudo-words optimised through a frozen
text encoder, on tiny random-config BERT (the demo's MiniLM architecture) and CLAP models
built from the real config classes, and through the real MiniLM on demo tag records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_models

from avsbridge.zeroshot_query.inversion import (
    InversionSettings,
    invert,
    mean_pooled_encoder,
    template_ids,
    word_vocabulary,
)

WORDS = ["dog", "cat", "piano", "guitar", "bird", "car", "bark", "music", "engine", "violin"]


@pytest.fixture(scope="module")
def tiny_bert():
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "##s", *WORDS]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=32,
    )
    return mean_pooled_encoder(BertModel(config), tok, "tiny-bert")


def test_vocabulary_is_whole_words_that_retokenise(tiny_bert):
    ids, words = word_vocabulary(tiny_bert.tokenizer)
    # "a" is one letter, "##s" a word piece, specials are out
    assert words == ["photo", "of", *WORDS]
    assert ids == tiny_bert.tokenizer.convert_tokens_to_ids(words)


def test_template_slots(tiny_bert):
    ids, slots = template_ids(tiny_bert.tokenizer, "A photo of {}", 2, (9, "dog"))
    tok = tiny_bert.tokenizer
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "a", "photo", "of", "dog", "dog", "[SEP]"]
    assert slots == [4, 5]
    with pytest.raises(ValueError, match="does not tokenise apart"):
        template_ids(tok, "A photo{}", 1, (9, "dog"))  # "photodog" is one unknown word


def test_embedding_path_equals_the_tokenizer_path(tiny_bert):
    import torch

    t = tiny_bert.tokenizer(["a photo of dog bark"], return_tensors="pt")
    x = tiny_bert.embeddings[t["input_ids"]].unsqueeze(0)[0]
    with torch.no_grad():
        via_embeds = tiny_bert.encode_embeds(x, t["attention_mask"]).numpy()
    np.testing.assert_allclose(
        via_embeds, tiny_bert.encode_texts(["a photo of dog bark"]), atol=1e-6
    )


@pytest.mark.parametrize("method", ["pez", "continuous"])
def test_optimisation_reduces_the_loss_and_is_deterministic(tiny_bert, method):
    target = tiny_bert.encode_texts(["a photo of piano bark"])[0]
    settings = InversionSettings(tokens=2, steps=60, lr=0.1, seed=3, method=method)
    run = invert(tiny_bert, target, settings)
    assert run == invert(tiny_bert, target, settings)  # seeded, CPU-deterministic
    assert len(run["pseudo_words"]) == 2 and set(run["pseudo_words"]) <= {"photo", "of", *WORDS}
    assert run["query"] == "A photo of " + " ".join(run["pseudo_words"])
    assert run["loss_curve"][0] == [0, run["loss_start"]]
    assert run["loss_curve"][-1][0] == settings.steps - 1
    if method == "pez":
        # the optimised prompt is discrete: re-encoding the query string gives its loss back
        assert run["loss_best_discrete"] < run["loss_start"]
        assert run["query_cosine"] == pytest.approx(1 - run["loss_best_discrete"], abs=1e-5)
    else:
        assert run["loss_end_continuous"] < run["loss_start"] / 2
    other_seed = invert(tiny_bert, target, InversionSettings(steps=1, seed=4, method=method))
    assert other_seed["initial_words"] != run["initial_words"]


def test_settings_are_validated_naming_the_file():
    assert InversionSettings.from_params({"tokens": 1, "steps": 5}).tokens == 1
    with pytest.raises(ValueError, match=r"params\.yaml.*tokens=0.*method='x'"):
        InversionSettings.from_params({"tokens": 0, "method": "x"})
    with pytest.raises(ValueError, match="unknown key"):
        InversionSettings.from_params({"step": 5})
    with pytest.raises(ValueError, match="template"):
        InversionSettings.from_params({"template": "no slot"})


# --- paper profile: CLAP's audio embedding through CLAP's own frozen text tower -------------


def _bpe_vocab(words: list[str]) -> tuple[dict[str, int], list[str]]:
    """A byte-level BPE vocabulary whose merges spell each word after a space (Ġword)."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "A": 4, "\u0120": 5}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(ch, len(vocab))
    merges: list[str] = []
    for word in words:
        piece = "\u0120"
        for ch in word:
            merge = f"{piece} {ch}"
            if merge not in merges:
                merges.append(merge)
            piece += ch
            vocab.setdefault(piece, len(vocab))
    return vocab, merges


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    import torch
    from transformers import (
        RobertaTokenizer,
    )

    folder = tmp_path_factory.mktemp("clap")
    vocab, merges = _bpe_vocab(["photo", "of", *WORDS])
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    torch.manual_seed(0)
    tiny_models.write_clap(folder, tok)
    return folder


@pytest.fixture()
def wav_sample(tmp_path):
    from avsbridge.data.zeroshot import ZeroShotSample
    from avsbridge.io import write_wav

    rng = np.random.default_rng(0)
    audio = tmp_path / "a.wav"
    write_wav(audio, (rng.standard_normal(16000) * 0.1).astype(np.float32), 16000)
    return ZeroShotSample("demo-zeroshot", "s", "g", tmp_path / "i.png", audio, tmp_path / "g.png")


def test_clap_inversion_through_clap_text_encoder(tiny_clap, wav_sample):
    from transformers import RobertaTokenizer

    from avsbridge.zeroshot_query import MATCHERS
    from avsbridge.zeroshot_query.build import build_query

    def run(method: str) -> dict:
        matcher = MATCHERS.load_all().create("clap-clip", clap_model=str(tiny_clap), device="cpu")
        settings = InversionSettings(tokens=2, steps=40, seed=0, method=method)
        rec = build_query("inversion", {}, None, matcher, wav_sample, inversion=settings)
        assert "clip" not in matcher._loaded  # inversion never loads CLIP
        return rec

    rec = run("pez")
    assert rec == run("pez")  # fresh matcher, same record
    assert rec["strategy"] == "inversion" and rec["target"]["dim"] == 16
    assert len(rec["target"]["sha256"]) == 64
    # whole-word tokens of CLAP's BPE vocabulary (a BPE vocabulary also holds word starts)
    _, words = word_vocabulary(RobertaTokenizer.from_pretrained(tiny_clap))
    assert "photo" in words and all(len(w) >= 2 for w in words)
    assert set(rec["pseudo_words"]) <= set(words)
    assert rec["query"] == "A photo of " + " ".join(rec["pseudo_words"])
    assert rec["loss_best_discrete"] <= rec["loss_start"]
    assert rec["query_cosine"] == pytest.approx(1 - rec["loss_best_discrete"], abs=1e-5)
    assert rec["settings"]["steps"] == 40
    cont = run("continuous")
    assert cont["loss_end_continuous"] < cont["loss_start"]
    assert cont["target"] == rec["target"]  # the same audio embedding


# --- demo profile: the real MiniLM on tag records -------------------------------------------


def test_minilm_inversion_recovers_the_tag_words():
    from avsbridge.zeroshot_query.minilm import MiniLMMatcher

    matcher = MiniLMMatcher(torch_threads=1)
    settings = InversionSettings(tokens=1, steps=40, seed=0)
    audio = {"tags": [{"label": "Violin, fiddle", "score": 0.7}], "top_class": "Violin, fiddle"}
    rec = matcher.invert(None, audio, settings)
    assert rec["pseudo_words"] == ["violin"] and rec["query"] == "A photo of violin"
    assert rec["target_source"]["text"] == ["violin"]
    assert rec["loss_best_discrete"] < rec["loss_start"]
    assert matcher.invert(None, audio, settings) == rec
    # no tag above the threshold: the top class alone is the audio
    rec2 = matcher.invert(None, {"tags": [], "top_class": "Violin, fiddle"}, settings)
    assert rec2["target"] == rec["target"]
    silent = matcher.invert(None, {"tags": [], "top_class": ""}, settings)
    assert silent["target"] is None and silent["query"] == "A photo of something"


def test_inversion_job_record_and_summary(tmp_path, monkeypatch):
    """zeroshot_query_job: one record per sample with the run, settings in summary + provenance."""
    from avsbridge.config import load_config
    from avsbridge.provenance.records import record_path
    from avsbridge.stages import JobContext
    from avsbridge.zeroshot import jobs
    from avsbridge.zeroshot.samples import dataset_samples

    config = load_config()
    samples = dataset_samples(config, "is3")[:2]
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    tags = [{"label": "Piano", "score": 0.6}, {"label": "Music", "score": 0.3}]
    for s in samples:
        (audio_dir / f"{s.slug}.json").write_text(
            json.dumps({"sample": s.id, "tags": tags, "top_class": "Piano"})
        )
    monkeypatch.setattr(jobs, "shard_samples", lambda *a: samples)
    out = tmp_path / "query"
    ctx = JobContext(
        config=config,
        wildcards={
            "dataset": "is3",
            "shard": "s0000",
            "matcher": "minilm",
            "query": "inversion",
            "audio_model": "yamnet-clip",
            "image_model": "none",
        },
        input={"audio": [audio_dir]},
        output=out,
        params={"inversion": {"tokens": 1, "steps": 20, "seed": 0}},
        log=None,
    )
    jobs.zeroshot_query_job(ctx)
    recs = [json.loads((out / f"{s.slug}.json").read_text()) for s in samples]
    assert [r["sample"] for r in recs] == [s.id for s in samples]
    assert recs[0]["query"] == recs[1]["query"] and recs[0]["pseudo_words"]
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["inversion"]["steps"] == 20 and summary["backend"]["backend"] == "minilm"
    prov = json.loads(record_path(out).read_text())
    assert prov["prompt"]["inversion"]["tokens"] == 1
    assert prov["inputs"], prov  # leads back to the zeroshot_audio records
