"""One `weft serve` child process on port 0 with its own data directory (as Tests/Interop starts it)."""

import os
import signal
import subprocess
import tempfile
import threading
import time

from . import rawhttp


class NodeError(Exception):
    pass


class Node:
    def __init__(self, binary, data_dir=None):
        self.binary = binary
        self.owns_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="weft-fuzz-")
        self.proc = None
        self.otlp = self.query = None
        self.stderr_tail = []

    def start(self, ready_timeout=60.0):
        self.stderr_tail = []
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--otlp-port", "0", "--query-port", "0", "--otlp-grpc-port", "0",
             "--data-dir", self.data_dir, "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        line = self.proc.stdout.readline().decode(errors="replace")  # blocks until both ports are bound
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        if not line.startswith("listening "):
            self.proc.wait(timeout=30)
            time.sleep(0.2)  # let the drain thread take the last stderr lines
            raise NodeError("weft did not start (exit %s): %r %s" % (self.proc.returncode, line, self.stderr_text()))
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.otlp, self.query = fields["otlp"], fields["query"]
        self.wait_ready(ready_timeout)
        return self

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())
            del self.stderr_tail[:-3000]

    def stderr_text(self):
        return "\n".join(self.stderr_tail[-20:])

    def crash_summary(self):
        """The reason and the first frames in Weft's sources from a Swift crash report on stderr."""
        lines = list(self.stderr_tail)
        reasons = [l.strip() for l in lines if "Fatal error" in l or "Program crashed" in l or "fatal error" in l or "runtime failure" in l]
        frames = [l.strip() for l in lines if "/Sources/" in l and " at " in l and "/checkouts/" not in l][:4]
        if not reasons and not frames:
            return self.stderr_text()[-800:]
        return " | ".join(reasons[:2] + frames)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                raise NodeError("weft exited (%s) before /ready: %s" % (self.proc.returncode, self.stderr_text()))
            try:
                r = rawhttp.request(self.query, "GET", "/ready", timeout=2.0)
                if r.status == 200:
                    return
                last = "status %d" % r.status
            except rawhttp.NoAnswer as e:
                last = e.why
            time.sleep(0.05)
        raise NodeError("/ready did not answer 200 within %.0f s (%s)" % (timeout, last))

    def settle(self, seconds):
        """Waits up to `seconds` for the process to exit (after a dropped connection), or up to 60 s
        once it has begun a crash report (the Swift backtracer takes seconds to symbolicate)."""
        deadline = time.monotonic() + seconds
        while self.alive():
            crashing = any("Fatal error" in l or "Program crashed" in l or "runtime failure" in l for l in self.stderr_tail[-3000:])
            if time.monotonic() > deadline + (60 if crashing else 0):
                return
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exit_description(self):
        code = self.proc.returncode
        if code is not None and code < 0:
            try:
                return "killed by %s" % signal.Signals(-code).name
            except ValueError:
                return "killed by signal %d" % -code
        return "exit status %s" % code

    def memory(self):
        """(VmRSS, VmHWM) in bytes, or (0, 0) when the process is gone."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            return 0, 0

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Stops the process; returns True if it exited within `timeout` (else it is killed)."""
        if not self.alive():
            return True
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            return False

    def discard(self):
        self.stop(signal.SIGKILL)
        if self.owns_dir:
            subprocess.run(["rm", "-rf", self.data_dir], check=False)

    def __del__(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
