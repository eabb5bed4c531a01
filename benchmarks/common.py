"""What every benchmark script shares: timing, the machine note and its section of RESULTS.md.

Benchmarks run as scripts from the repository root (``python benchmarks/NAME.py``),
so they import this module as ``common`` from their own folder.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

RESULTS_FILE = Path(__file__).with_name("RESULTS.md")
WARMUP_CALLS = 5


def median_ms(call: Callable[[], Any], repeats: int, warmup: int = WARMUP_CALLS) -> float:
    """Median wall time of ``call()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def machine_note() -> str:
    """CPU, Python and library versions, for the header of a results section."""
    import keras
    import sklearn
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return (
        f"{os.cpu_count()}-core CPU ({cpu}), no GPU; Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, scikit-learn {sklearn.__version__}"
    )


def load_average() -> str:
    """The 1-minute load average: timings on a 2-core machine mean little when it is far above 0."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def section_header(name: str, title: str, command: str, total_seconds: float, loads: tuple[str, str]) -> list[str]:
    """The opening lines of a results section: markers, title, command, date, machine."""
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        f"<!-- {name}:start -->",
        f"## {title}",
        "",
        f"Command: `{command}`  ",
        f"Date: {date}; total runtime {total_seconds / 60:.1f} min  ",
        f"Machine: {machine_note()}; 1-min load average {loads[0]} at start, {loads[1]} at end",
    ]


def section(name: str, title: str, command: str, total_seconds: float, loads: tuple[str, str],
            body: Sequence[str]) -> str:
    """A whole results section: header, then ``body`` lines, then the end marker."""
    return "\n".join([*section_header(name, title, command, total_seconds, loads), "", *body, f"<!-- {name}:end -->"])


def write_results(name: str, text_of_section: str, path: Path = RESULTS_FILE) -> None:
    """Replace the ``name`` section of RESULTS.md (append it if absent); keep the rest."""
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start, end = text.find(start_marker), text.find(end_marker)
    if start != -1 and end > start:
        text = text[:start] + text_of_section + text[end + len(end_marker):]
    else:
        text = text.rstrip("\n") + "\n\n" + text_of_section + "\n"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
