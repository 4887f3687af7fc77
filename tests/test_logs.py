"""Nothing a visitor sends reaches the log whole: long messages and long printed lines are cut."""

from __future__ import annotations

import io
import logging

from demo.logs import TruncatingFilter, TruncatingStream


def test_long_log_messages_are_cut(caplog):
    logger = logging.getLogger("test-logs")
    logger.addFilter(TruncatingFilter(100))
    with caplog.at_level(logging.INFO, logger="test-logs"):
        logger.info("payload %s", "data:" + "A" * 100_000)
    (record,) = caplog.records
    assert len(record.getMessage()) < 200 and "more characters cut" in record.getMessage()


def test_a_long_exception_text_is_cut_but_its_type_kept(caplog):
    logger = logging.getLogger("test-logs-exc")
    logger.addFilter(TruncatingFilter(100))
    with caplog.at_level(logging.INFO, logger="test-logs-exc"):
        try:
            raise ValueError("x" * 10_000)
        except ValueError:
            logger.exception("failed")
    (record,) = caplog.records
    assert record.exc_info[0] is ValueError and len(str(record.exc_info[1])) < 200


def test_long_lines_printed_to_stderr_are_cut():
    buffer = io.StringIO()
    stream = TruncatingStream(buffer, limit=50)
    stream.write("short\n" + "x" * 10_000 + "\nend\n")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "short" and lines[2] == "end" and len(lines[1]) < 100
