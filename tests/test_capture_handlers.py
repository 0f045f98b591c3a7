"""The conftest fixture that drops logging handlers left on a closed capture stream.

An in-process run under ``capsys`` lets Hydra attach a ``StreamHandler`` to that test's
capture stream; pytest closes the stream when the test ends, and without the fixture every
later log record in the session fails with ``ValueError: I/O operation on closed file``
(printed as ``--- Logging error ---``). The two tests run in file order: the first leaves
such a handler behind, as Hydra does; the second logs and must see no logging error.
"""

from __future__ import annotations

import logging
import sys

_LOGGER = "marl.test_capture_handlers"


def test_a_handler_is_left_on_this_tests_capture_stream(capsys):
    handler = logging.StreamHandler(sys.stdout)  # sys.stdout is capsys's stream here
    logging.getLogger(_LOGGER).addHandler(handler)
    logging.getLogger(_LOGGER).warning("written to the capture stream")
    assert "written to the capture stream" in capsys.readouterr().out


def test_a_later_record_finds_no_closed_stream(capsys):
    logging.getLogger(_LOGGER).warning("a record after the capture closed")
    err = capsys.readouterr().err
    assert "Logging error" not in err and "closed file" not in err, err
    handlers = logging.getLogger(_LOGGER).handlers
    assert not any(getattr(getattr(h, "stream", None), "closed", False) for h in handlers)
