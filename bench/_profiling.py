"""Where a benchmarked process spends its time: py-spy samples, summarised by function."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample `pid` with py-spy for `seconds` into `out` (raw), if py-spy is installed."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("--profile: py-spy not found (.venv/bin/pip install py-spy)")
        return None
    argv = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"]
    return subprocess.Popen(
        [*argv, "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _frame(raw: str) -> str:
    """`func (path/to/module.py:123)` → `func (module.py)`, so lines of one function merge."""
    name, _, where = raw.partition(" (")
    return f"{name} ({Path(where.rsplit(':', 1)[0]).name})" if where else name


def summarise_profile(path: Path, top: int = 15) -> None:
    """Print the hottest frames of a raw py-spy profile: own time, then inclusive."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        print("profile: no samples")
        return
    print(f"profile: {total} samples; own time (leaf frames):")
    for f, n in own.most_common(top):
        print(f"  {n / total:6.1%}  {f}")
    print("inclusive time (frames on the stack):")
    for f, n in inclusive.most_common(top + 10):
        print(f"  {n / total:6.1%}  {f}")
