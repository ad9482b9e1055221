"""JSON logs carry the ids a line is about; `ddoc codec new-key` makes usable keys."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys

from ddoc.contracts import codec
from ddoc.platform.logs import JsonFormatter


def test_json_lines_carry_time_level_message_and_ids() -> None:
    record = logging.LogRecord(
        "ddoc.alerts.intake", logging.WARNING, __file__, 1, "could not start %s", ("ex_1",), None
    )
    record.tenant_id, record.execution_id = "acme", "ex_1"
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "ddoc.alerts.intake"
    assert line["message"] == "could not start ex_1"
    assert (line["tenant_id"], line["execution_id"]) == ("acme", "ex_1")
    assert line["time"].endswith("+00:00")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failing = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "RuntimeError: boom" in json.loads(JsonFormatter().format(failing))["exception"]


def test_new_codec_keys_load() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "ddoc.cli.main", "codec", "new-key"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert len(base64.b64decode(printed)) == 32
    keys = codec.load_keys({"*": {"active": "k1", "keys": {"k1": printed}}})
    assert keys["*"].active == "k1"
