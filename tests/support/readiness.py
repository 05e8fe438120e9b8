"""Start a server process and wait for it to say it is listening: an event, not a sleep loop.

The server's output (stdout and stderr) is copied line by line into a log file by a reader
thread, which sets an event on the line that says the socket listens (uvicorn's "Uvicorn
running on", gunicorn's "Listening at") or when the output ends (the process exited). One
HTTP request then confirms it answers; a socket that listens queues it until the app is up.

Only for single-process servers (``--workers 1``): with several workers uvicorn's parent logs
"Uvicorn running on" after binding the socket but before any worker listens on it.
"""

from __future__ import annotations

import re
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

LISTENING = re.compile(r"Uvicorn running on|Listening at")
ANSWER_TIMEOUT_S = 120.0


class Logged:
    """A process whose output goes to ``log_path``; :attr:`listening` is set when it says it
    listens or its output ends."""

    def __init__(self, args, log_path: Path, **popen) -> None:
        self.log_path = Path(log_path)
        self.listening = threading.Event()
        self.said_listening = False
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            **popen,
        )
        self._reader = threading.Thread(target=self._copy, daemon=True)
        self._reader.start()

    def _copy(self) -> None:
        with self.log_path.open("w") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if not self.said_listening and LISTENING.search(line):
                    self.said_listening = True
                    self.listening.set()
        self.listening.set()  # the output ended: the process exited

    def tail(self, n_chars: int = 3000) -> str:
        return self.log_path.read_text()[-n_chars:] if self.log_path.exists() else ""

    def wait_until_answering(self, url: str, timeout: float) -> None:
        """Return once the process listens and ``url`` gets an HTTP answer (any status);
        AssertionError with the log's tail if it exits or says nothing in ``timeout``."""
        if not self.listening.wait(timeout):
            raise AssertionError(f"did not start listening in {timeout:.0f} s:\n{self.tail()}")
        if not self.said_listening:
            self.process.wait()
            raise AssertionError(f"exited with {self.process.returncode}:\n{self.tail()}")
        try:
            urllib.request.urlopen(url, timeout=ANSWER_TIMEOUT_S)
        except urllib.error.HTTPError:
            pass  # any HTTP answer means it is serving
