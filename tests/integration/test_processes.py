"""The test processes themselves: a child's signal handling does not depend on the terminal running the tests."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.processes import Process, python, sigint_ignored

pytestmark = pytest.mark.integration

SHOW_SIGINT = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)"


class TestSignals:
    """Started from a background shell (SIGINT ignored), a test's child still stops on Ctrl-C."""

    @pytest.mark.interrupts
    def test_a_child_started_while_sigint_is_ignored_gets_python_s_ctrl_c_handler(self, tmp_path: Path) -> None:
        """The ignore a background job inherits does not reach the child: Python installs KeyboardInterrupt."""
        with sigint_ignored():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            child = Process("show-sigint", [python(), "-c", SHOW_SIGINT], log_dir=tmp_path)
        try:
            assert child.popen.wait(timeout=30) == 0
            assert child.output().strip() == "True", child.output()
        finally:
            child.stop()
