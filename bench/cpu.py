"""CPU time of processes, read from /proc: what the benchmarks compare."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def cpu_timed(run: Callable[[], T]) -> tuple[float, T]:
    """CPU seconds of this process for `run()`, and its result: others' load on a shared
    machine does not count."""
    gc.collect()
    started = time.process_time()
    result = run()
    return time.process_time() - started, result


def process_cpu_s(pid: int, children: bool = False) -> float:
    """utime + stime (+ the waited-for children's) of a process, in seconds."""
    return process_cpu_s_of(Path(f"/proc/{pid}/stat"), children)


def process_cpu_s_of(stat: Path, children: bool = False) -> float:
    """utime + stime (+ the waited-for children's) from a process's or thread's stat file."""
    fields = stat.read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def jit_compiler_cpu_s(pid: int) -> float:
    """CPU seconds of a JVM's JIT compiler threads alive now (HotSpot names them "C1
    CompilerThread<n>" and "C2 CompilerThread<n>", which /proc cuts to 15 characters). On
    more than a few cores HotSpot adds and ends compiler threads as work comes and goes, and
    an ended thread's time is gone from /proc: there, a difference of two readings can miss
    some; on 2 cores it runs one of each for the JVM's life."""
    used = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if "CompilerThre" in (task / "comm").read_text():
                used += process_cpu_s_of(task / "stat")
        except OSError:  # the thread ended meanwhile
            continue
    return used


def child_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children if Path(f"/proc/{pid}").exists()]


def print_per_row(stage: str, base_s: float, head_s: float, rows: int) -> None:
    """One line of an in-process A/B: each side's CPU a row, and their ratio."""
    print(
        f"{stage:9} base {base_s / rows * 1e6:6.2f} us/row  head {head_s / rows * 1e6:6.2f}"
        f" us/row  base/head {base_s / head_s:.2f}x"
    )
