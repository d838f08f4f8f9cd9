"""Per-call speeds that used to be wall-clock assertions in tests, as figures.

Prints JSON: YAMNet ms per 1-s window, loading the real 11,356-row AVSS
metadata.csv (best of 5), and ``avsbridge audit`` of a report when one is given.
Targets on 2 cores: YAMNet < 5 ms/window, metadata < 1 s, audit of Table 1 < 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def shared(name: str) -> Path:
    env = {"fixtures": "AVSBRIDGE_FIXTURES", "weights": "AVSBRIDGE_WEIGHTS_MIRROR"}[name]
    return Path(os.environ.get(env, REPO.parent / "shared" / name))


def yamnet_ms_per_window() -> float:
    from avsbridge.audio_text import AUDIO_TEXTERS, prompt_text
    from avsbridge.io import read_wav

    texter = AUDIO_TEXTERS.create("yamnet")
    samples, rate = read_wav(shared("fixtures") / "media" / "speech.wav")
    mono = samples if samples.ndim == 1 else samples.mean(axis=1)
    windows = [mono[i : i + rate] for i in range(0, len(mono) - rate + 1, rate)] * 25
    texter.describe(windows[:2], prompt_text("caption"))  # warm-up
    started = time.perf_counter()
    texter.describe(windows, prompt_text("caption"))
    return (time.perf_counter() - started) / len(windows) * 1000


def metadata_load_s() -> float:
    from avsbridge.data.avsbench import load_avss

    root = shared("fixtures") / "avsbench-meta" / "v3"
    return min(timeit.repeat(lambda: load_avss(root), number=1, repeat=5))


def audit_s(report: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "avsbridge.cli", "audit", str(report)],
        check=False,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--audit", type=Path, help="a built report to audit, e.g. reports/table1.csv"
    )
    args = parser.parse_args()
    result = {
        "yamnet_ms_per_window": round(yamnet_ms_per_window(), 3),
        "avss_metadata_load_s": round(metadata_load_s(), 3),
    }
    if args.audit:
        result["audit_s"] = round(audit_s(args.audit), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
