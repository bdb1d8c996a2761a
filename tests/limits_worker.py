"""Runs bad specs through the CLI, each in a forked child under resource limits; prints JSON results.

Started by tests/test_errors.py as `python tests/limits_worker.py CPU_SECONDS MEMORY_MB PATH...`. The
parent imports archcalc once; each child sets RLIMIT_CPU and RLIMIT_AS (the parent's address space
plus MEMORY_MB), runs `archcalc table PATH` and exits with the CLI's status. The parent records the
status, the child's CPU time and peak resident memory (wait4), and what it wrote on stdout and stderr.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time

from archcalc.cli import main


def address_space() -> int:
    """This process's address space, in bytes (what RLIMIT_AS counts)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def run_one(path: str, cpu: int, memory: int) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child
            status = 70
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
                limit = address_space() + memory
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                main(["table", path])
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # reported, not hidden: the test fails on it
                os.write(2, f"UNHANDLED {type(exc).__name__}: {exc}\n".encode(errors="replace"))
                status = 71
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return {
            "path": path,
            "exit": os.waitstatus_to_exitcode(status),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "wall_s": wall,
            "max_rss_mb": usage.ru_maxrss / 1024,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


if __name__ == "__main__":
    cpu, memory = int(sys.argv[1]), int(sys.argv[2]) * 2**20
    print(json.dumps([run_one(path, cpu, memory) for path in sys.argv[3:]]))
