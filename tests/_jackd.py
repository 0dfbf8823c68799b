"""Test helper: a private JACK server with the dummy backend (no sound card), and tool lookups.

Each server gets a unique name (``jackd -n NAME``); clients reach it through
the ``JACK_DEFAULT_SERVER`` environment variable, so tests never touch a JACK
server the user may be running.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid

_XRUN = re.compile(r"XRun: client = (\S+) was not finished")


#: set to 1 (``.ci/run`` does) to make the live rig's benches and tests fail where they would skip or fall back
#: (JACK programs or the shared recordings missing), so that a machine meant to run them cannot pass by skipping
REQUIRE_ENV = "RTCLASSIFY_REQUIRE_RIG"


def rig_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def fail_if_required(reason: str) -> None:
    """``pytest.fail`` under ``RTCLASSIFY_REQUIRE_RIG=1`` (what the rig needs is missing); else nothing, and the
    caller skips or falls back."""
    import pytest

    if rig_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: required here)")


def skip_or_fail(reason: str) -> None:
    """``pytest.skip(reason)``, or ``pytest.fail`` under ``RTCLASSIFY_REQUIRE_RIG=1``."""
    import pytest

    fail_if_required(reason)
    pytest.skip(reason)


def missing(*programs: str) -> list[str]:
    """The programs of the list that are not on PATH."""
    return [p for p in programs if shutil.which(p) is None]


class JackServer:
    """``jackd -n NAME -d dummy -r RATE -p PERIOD`` as a context manager.

    Attributes
    ----------
    name : str
        Server name (put it in ``JACK_DEFAULT_SERVER``).
    env : dict
        A copy of ``os.environ`` with ``JACK_DEFAULT_SERVER`` set and server autostart off.
    """

    def __init__(self, rate: int = 48000, period: int = 256, realtime: bool = True, keep_output: bool = True):
        self.name = f"rtc{uuid.uuid4().hex[:10]}"
        self.rate, self.period = rate, period
        self.realtime = realtime
        #: keep the server's output (``log``, ``lines``, :meth:`xruns`); False discards it, so a long run
        #: holds no growing list of the server's messages
        self.keep_output = keep_output
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1",
                        JACK_NO_AUDIO_RESERVATION="1")
        self.log = b""
        #: (wall time, line) of the server's output, as it arrives
        self.lines: list[tuple[float, str]] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> "JackServer":
        """Start the server; without real-time privileges, start it again in non-real-time mode."""
        try:
            return self._start(timeout)
        except RuntimeError:
            if not self.realtime:
                raise
            self.realtime = False
            self.lines, self.log = [], b""
            return self._start(timeout)

    def _start(self, timeout: float) -> "JackServer":
        cmd = ["jackd", "-n", self.name]
        if not self.realtime:
            cmd.append("-r")
        cmd += ["-d", "dummy", "-r", str(self.rate), "-p", str(self.period), "-C", "2", "-P", "2"]
        out = subprocess.PIPE if self.keep_output else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        if self.keep_output:
            self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
            self._reader.start()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                if self._reader is not None:
                    self._reader.join(2)
                raise RuntimeError(f"jackd exited with {self.proc.returncode}: {self.log.decode(errors='replace')}")
            r = subprocess.run(["jack_lsp"], env=self.env, capture_output=True, text=True)
            if r.returncode == 0 and "system:capture_1" in r.stdout:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jackd did not come up in {timeout} s")

    def _read(self, pipe) -> None:
        for raw in pipe:
            self.lines.append((time.time(), raw.decode(errors="replace").rstrip("\n")))
            self.log += raw

    def xruns(self, start: float = 0.0, end: float = float("inf")) -> list[str]:
        """Clients the server reported late ("XRun: client = X was not finished") between two wall times."""
        out = []
        for t, line in self.lines:
            m = _XRUN.search(line)
            if m and start <= t <= end:
                out.append(m.group(1))
        return out

    def ports(self, connections: bool = False) -> str:
        args = ["jack_lsp", "-c"] if connections else ["jack_lsp"]
        return subprocess.run(args, env=self.env, capture_output=True, text=True).stdout

    def connect(self, src: str, dst: str) -> None:
        subprocess.run(["jack_connect", src, dst], env=self.env, check=True, capture_output=True)

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._reader is not None:
            self._reader.join(5)
        if p.stdout:
            p.stdout.close()

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_port(server: JackServer, needle: str, timeout: float = 10.0) -> list[str]:
    """Wait until ports whose name contains ``needle`` exist; returns them."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [p for p in server.ports().splitlines() if needle in p]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no JACK port containing {needle!r} after {timeout} s; ports:\n{server.ports()}")
