"""A real `xlsr-live serve` process on a free port, for tests that use third-party clients."""

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "xlsr_live" / "models" / "demo"


class ServeProcess:
    """`with ServeProcess("--token", "t") as server:` runs the demo model; `server.http` is its base URL."""

    def __init__(self, *args: str, model: str = str(DEMO)):
        self.args = [sys.executable, "-m", "xlsr_live.cli", "serve", "--model", model, "--port", "0",
                     "--log-level", "WARNING", *args]
        self.proc = None

    def __enter__(self) -> "ServeProcess":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, env=env, text=True)
        line = self.proc.stdout.readline()
        if " on " not in line:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            raise RuntimeError(f"xlsr-live serve did not start: {line!r}")
        self.ws = line.split(" on ")[1].split()[0]
        self.http = self.ws.replace("ws", "http", 1)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
