"""Risk classifier speed: a typical command, and 100 KB inputs of several shapes.

.venv/bin/python -m bench.risk_speed
"""

from __future__ import annotations

import random
import statistics
import string
import sys
import time

from ddoc.runbooks.risk import classify_command


def main() -> int:
    runs = []
    for run in range(5):
        # Fresh commands each pass: classify_command caches what it has seen.
        commands = [
            f"kubectl get pods -n ns{run}-{i} -o wide | grep -v Running" for i in range(2000)
        ]
        started = time.perf_counter()
        for command in commands:
            classify_command(command)
        runs.append((time.perf_counter() - started) / len(commands) * 1000)
    print(f"typical command: {statistics.median(runs):.3f} ms (median of 5 passes of 2,000)")
    rnd = random.Random(7)
    inputs = {
        "printable noise": "".join(rnd.choices(string.printable, k=100_000)),
        "script": "kubectl get pods -n prod | grep -v Running\n" * 2400,
        "pipes": "a|" * 50_000,
        "nested substitutions": "$(echo " * 10_000 + ")" * 10_000,
    }
    for name, text in inputs.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            classify_command(text + " " * len(times))  # a new string each time: no cache hit
            times.append((time.perf_counter() - started) * 1000)
        print(f"{name} ({len(text) // 1000} KB): {statistics.median(times):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
