"""Test scaffolding of the contract servers: a real server process on a free loopback port."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

TESTBED = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, method: str, data: bytes | None, headers: dict, timeout: float):
    """(status, parsed JSON body or None) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None)


class ServerProcess:
    """`python -m <module> --port P --journal J <extra args>`, ready once `ready_path` answers 200."""

    module = ""
    ready_path = ""
    extra_args: tuple = ()

    def __init__(self, journal: str):
        self.journal = journal
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=TESTBED)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", str(self.port), "--journal", self.journal,
             *self.extra_args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("contract server exited: " + self.proc.stdout.read().decode())
            try:
                if http_json(self.url + self.ready_path, "GET", None, self.ready_headers(), 10)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("contract server not ready")

    def ready_headers(self) -> dict:
        return {}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
