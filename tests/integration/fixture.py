# Server fixture for the integration tier: starts a memcached-compatible
# binary on a free 127.0.0.1 port, waits until it accepts, stops it by pid
# (SIGTERM, then SIGKILL after a deadline) and keeps its stderr for reports.
# Every wait here is bounded by a deadline; every socket has a timeout.

import os
import signal
import socket
import subprocess
import tempfile
import time

MEMCACHED = "/usr/bin/memcached"
HOST = "127.0.0.1"
IO_TIMEOUT = 5.0


def free_port():
    """A loopback port the kernel just handed out (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ServerError(Exception):
    pass


STOPPING = []   # servers sent SIGTERM by stop_async, not yet reaped


def reap(deadline=10.0):
    """Waits for every stop_async'ed server (SIGKILL past the deadline);
    returns [(label, returncode, stderr tail)] for those that did not exit 0
    (a sanitizer report, a crash on shutdown, a hang)."""
    bad = []
    end = time.monotonic() + deadline
    while STOPPING:
        srv = STOPPING.pop(0)
        try:
            rc = srv.proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait(timeout=5)
            rc = "hung after SIGTERM, killed"
        if rc != 0:
            bad.append((srv.label or srv.name, rc, srv.stderr(1500)))
        if srv.errfile is not None:
            srv.errfile.close()
    return bad


class Server:
    """One running server. Use as a context manager: always stopped on exit."""

    def __init__(self, binary, extra=(), threads=2, memory=64, name=None, unix=None, label=None):
        self.binary = binary
        self.label = label
        self.unix = unix
        self.extra = list(extra)
        self.threads = threads
        self.memory = memory
        self.name = name or os.path.basename(binary)
        self.proc = None
        self.port = None
        self.errfile = None

    def argv(self):
        if self.unix:
            argv = [self.binary, "-U", "0", "-s", self.unix, "-t", str(self.threads)]
        else:
            argv = [self.binary, "-U", "0", "-l", HOST, "-p", str(self.port),
                    "-t", str(self.threads)]
        # a case's own -m wins over the default
        if "-m" not in self.extra:
            argv += ["-m", str(self.memory)]
        if os.geteuid() == 0 and "-u" not in self.extra:
            argv += ["-u", "root"]
        return argv + self.extra

    def start(self, deadline=10.0):
        last = None
        for _attempt in range(5):  # retry when another process took the port
            self.port = free_port()
            self.errfile = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=self.errfile, stderr=self.errfile)
            try:
                self.wait_ready(deadline)
                return self
            except ServerError as e:
                last = e
                self.stop()
        raise ServerError("%s did not start: %s" % (self.name, last))

    def wait_ready(self, deadline):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise ServerError("exited with %s: %s" % (self.proc.returncode, self.stderr()))
            try:
                with self.connect(timeout=1.0) as s:
                    s.settimeout(2.0)
                    s.sendall(b"version\r\n")
                    if recv_until(s, b"\r\n", 2.0).startswith(b"VERSION "):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise ServerError("not accepting on port %d after %.0fs" % (self.port, deadline))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, deadline=5.0):
        """SIGTERM, wait, then SIGKILL; returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=deadline)
        return self.proc.returncode

    def stop_async(self):
        """SIGTERM now; reap() later waits for the exit and checks its code.
        Saves the second or so a graceful exit takes, case after case."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
        STOPPING.append(self)

    def stderr(self, limit=4000):
        if self.errfile is None:
            return ""
        try:
            self.errfile.seek(0)
            data = self.errfile.read()
        except (OSError, ValueError):
            return ""
        text = data.decode("utf-8", "replace")
        return text[-limit:]

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def connect(self, timeout=IO_TIMEOUT):
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(self.unix)
            except OSError:
                s.close()
                raise
            return s
        s = socket.create_connection((HOST, self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stats(self, sub=b""):
        """The `stats [sub]` reply as an ordered list of (name, value) pairs."""
        with self.connect() as s:
            return stats_on(s, sub)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.errfile is not None:
            self.errfile.close()
        return False


def recv_until(sock, terminator, timeout):
    """Reads until the buffer ends with terminator; bounded by timeout."""
    end = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(terminator):
        left = end - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out, got %r" % buf[-200:])
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed, got %r" % buf[-200:])
        buf += chunk
    return buf


def stats_on(sock, sub=b""):
    sock.sendall(b"stats" + (b" " + sub if sub else b"") + b"\r\n")
    data = recv_until(sock, b"END\r\n", IO_TIMEOUT)
    pairs = []
    for line in data.split(b"\r\n"):
        if line.startswith(b"STAT "):
            parts = line.split(b" ", 2)
            pairs.append((parts[1].decode(), parts[2].decode() if len(parts) > 2 else ""))
    return pairs


def server_binary(kind):
    """The binary for --server memcached|fleetcached."""
    if kind == "memcached":
        return MEMCACHED
    path = os.environ.get("FLEETCACHED")
    if not path:
        raise ServerError("FLEETCACHED is not set")
    return path
