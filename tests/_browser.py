"""A headless Chromium driven over the W3C WebDriver protocol with the standard library only.

Debian's ``chromium`` and ``chromedriver`` (packages chromium and chromium-driver); tests that use
it skip when either is missing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
)


class WebDriver:
    """The few WebDriver calls the test needs."""

    def __init__(self, profile: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [DRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (OSError, urllib.error.URLError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.skip("chromedriver did not start")
            time.sleep(0.1)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
        ]
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"},
                }
            }
        }
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read())["value"]
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"WebDriver {method} {path}: {exc.read()[:500]!r}") from exc

    def open(self, path: Path, timeout: float = 120.0) -> None:
        """Load ``path`` and wait until the document is parsed and loaded (a big report on a busy
        machine can still be parsing when the navigation call returns)."""
        self._call("POST", f"/session/{self.session}/url", {"url": path.resolve().as_uri()})
        deadline = time.monotonic() + timeout
        while self.run("return document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} did not finish loading in {timeout:.0f} s")
            time.sleep(0.2)

    def run(self, script: str):
        return self._call("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": []})

    def console(self) -> list[dict]:
        return self._call("POST", f"/session/{self.session}/se/log", {"type": "browser"})

    def resize(self, width: int, height: int) -> None:
        """The window's outer size (in headless Chromium the page gets all of it)."""
        self._call("POST", f"/session/{self.session}/window/rect", {"width": width, "height": height})

    def screenshot(self) -> bytes:
        """The viewport as PNG bytes."""
        import base64

        return base64.b64decode(self._call("GET", f"/session/{self.session}/screenshot"))

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)
