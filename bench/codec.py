"""What payload encryption costs: AES-256-GCM encode + decode of typical payloads, against the
SDK's own JSON conversion of the same value measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/codec.py [--rounds 2000]

Payloads: a step result with the largest output the agent keeps (64 KiB), an execution input of
a 20-step runbook (~10 KiB), a decision signal (~300 B). Medians in microseconds. Writes
bench/results/codec.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from temporalio.converter import DataConverter

from bench.harness import REPO
from ddoc.contracts import codec

RESULTS = REPO / "bench" / "results" / "codec.json"


def values() -> dict[str, Any]:
    return {
        "step result, 64 KiB output": {"exit_code": 0, "output": "x" * 65536, "truncated": True},
        "execution input, 20 steps": {
            "steps": [
                {"id": f"s{n}", "text": "Restart the pods " * 10, "command": "kubectl get pods"}
                for n in range(20)
            ],
            "alert": {"labels": {f"k{n}": "v" * 40 for n in range(30)}},
        },
        "decision signal": {"step_id": "s3", "decision": "approve", "actor": {"user_id": "U1"}},
    }


async def measure(rounds: int) -> dict[str, Any]:
    converter = DataConverter.default.payload_converter
    sealed = codec.EncryptionCodec(
        codec.load_keys({"*": {"active": "k1", "keys": {"k1": codec.new_key()}}}),
        codec.fixed_tenant("*"),
    )
    found = {}
    for name, value in values().items():
        convert, protect = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            payloads = converter.to_payloads([value])
            converter.from_payloads(payloads)
            convert.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            await sealed.decode(await sealed.encode(payloads))
            protect.append((time.perf_counter() - started) * 1e6)
        found[name] = {
            "bytes": len(payloads[0].data),
            "json_convert_us_p50": round(statistics.median(convert), 1),
            "encrypt_decrypt_us_p50": round(statistics.median(protect), 1),
            "ratio": round(statistics.median(protect) / statistics.median(convert), 2),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    found = asyncio.run(measure(args.rounds))
    print(json.dumps(found, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
