"""The conftest fixture that keeps logging handlers off closed or foreign capture streams.

An in-process run under ``capsys`` lets Hydra attach a ``StreamHandler`` to that test's
capture stream; pytest closes the stream when the test ends, and without the fixture every
later log record in the session fails with ``ValueError: I/O operation on closed file``
(printed as ``--- Logging error ---``). absl's handler (JAX imports it) is the converse: it
holds the session's capture file and closes it when Hydra resets logging. The tests run
in pairs, in file order: the first leaves such a handler behind, the second must find no
closed stream.
"""

from __future__ import annotations

import logging
import logging.config
import sys

import pytest

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


_ABSL: list[logging.Handler] = []


def test_an_absl_handler_is_made_on_the_session_capture_file():
    absl = pytest.importorskip("absl.logging")
    _ABSL.append(absl.PythonHandler())  # its stream: sys.stderr, the session's capture
    logging.getLogger(_LOGGER + ".absl").addHandler(_ABSL[0])


def test_a_logging_reset_under_capsys_closes_no_capture_file(capsys):
    """Hydra's logging setup closes every handler, as ``dictConfig`` does here; absl's
    ``close()`` would close the session's capture file (it is not this test's
    ``sys.stderr``) unless the conftest fixture moved it to ``sys.__stderr__``."""
    if not _ABSL:
        pytest.skip("absl is not installed")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert not _ABSL[0].stream.closed
    logging.getLogger(_LOGGER + ".absl").removeHandler(_ABSL[0])
