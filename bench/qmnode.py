"""A throwaway qmd node in a temporary folder, for the benchmarks in this folder."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import urllib3

urllib3.disable_warnings()

REPO = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("QM_BUILD_DIR", REPO / "build"))
QMD = BUILD / "src" / "daemon" / "qmd"
QM = BUILD / "src" / "cli" / "qm"
NODE = "bench"
PASSWORD = "bench-secret"


class BenchNode:
    """qmd on a free loopback port with its files under a temporary folder."""

    def __init__(self):
        if not QMD.exists():
            raise SystemExit(f"{QMD} not found: build first (ninja -C {BUILD}) or set QM_BUILD_DIR")
        self.root = Path(tempfile.mkdtemp(prefix="qm-bench-"))
        (self.root / "etc/pve").mkdir(parents=True)
        (self.root / "var/lib/vz").mkdir(parents=True)
        (self.root / "etc/pve/storage.cfg").write_text(
            f"dir: local\n\tpath {self.root}/var/lib/vz\n\tcontent images,iso\n")
        (self.root / "password").write_text(PASSWORD + "\n")
        self.env = dict(os.environ, QM_ROOT=str(self.root))
        self.proc = None
        self.port = None
        self.session = requests.Session()

    def start(self):
        port_file = self.root / "port"
        self.log = open(self.root / "qmd.log", "ab")
        self.proc = subprocess.Popen(
            [str(QMD), "--root", str(self.root), "--listen", "127.0.0.1", "--port", "0",
             "--port-file", str(port_file), "--node", NODE,
             "--password-file", str(self.root / "password")],
            stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("qmd did not start: " + (self.root / "qmd.log").read_text())
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.ticket = self.login()

    def login(self):
        reply = self.session.post(self.url("/access/ticket"),
                                  data={"username": "root@pam", "password": PASSWORD},
                                  verify=False)
        reply.raise_for_status()
        data = reply.json()["data"]
        self.session.cookies.set("PVEAuthCookie", data["ticket"])
        self.session.headers["CSRFPreventionToken"] = data["CSRFPreventionToken"]
        return data["ticket"]

    def url(self, path):
        return f"https://127.0.0.1:{self.port}/api2/json{path}"

    def call(self, method, path, **data):
        # verify=False per request, because requests lets $REQUESTS_CA_BUNDLE override Session.verify.
        reply = self.session.request(method, self.url(path), data=data or None, verify=False)
        if reply.status_code != 200:
            raise SystemExit(f"{method} {path} failed ({reply.status_code}): {reply.text}")
        return reply.json()["data"]

    def wait_task(self, upid, poll=0.005, timeout=120):
        """Polls the task every poll seconds until it stops; returns its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.call("GET", f"/nodes/{NODE}/tasks/{upid}/status")
            if status["status"] == "stopped":
                return status["exitstatus"]
            time.sleep(poll)
        raise SystemExit(f"task {upid} still running after {timeout} s")

    def run_task(self, method, path, **data):
        upid = self.call(method, path, **data)
        exitstatus = self.wait_task(upid)
        if exitstatus != "OK":
            raise SystemExit(f"{method} {path}: task failed: {exitstatus}")

    def qm(self, *args):
        return subprocess.run([str(QM), *map(str, args)], env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def stop(self):
        """Stops qmd by its pid, kills every QEMU of the node and removes the folder."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        for pidfile in (self.root / "run/qemu-server").glob("*.pid"):
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass
        shutil.rmtree(self.root, ignore_errors=True)
