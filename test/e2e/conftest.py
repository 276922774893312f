"""Fixtures for end-to-end tests: real qmd daemons in temporary folders.

Each node is a qmd process with its own root folder, HTTPS on a free loopback
port and its local socket. VMs boot the test guest ISO under TCG. Every QEMU
and qmd a test starts is stopped by its pid when the test ends.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import urllib3
from proxmoxer import ProxmoxAPI

urllib3.disable_warnings()

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("QM_BUILD_DIR", REPO / "build"))
QMD = BUILD / "src" / "daemon" / "qmd"
QM = BUILD / "src" / "cli" / "qm"
PASSWORD = "e2e-secret"
NODE = "e2enode"
GUEST_BOOT_TIMEOUT = 90


@pytest.fixture(scope="session")
def guest_iso():
    """Builds (or takes from the cache) the test guest ISO."""
    out = subprocess.run([str(REPO / "test" / "guest" / "build")], check=True,
                         stdout=subprocess.PIPE, text=True)
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.is_file(), f"guest build did not produce {path}"
    return path


class Node:
    """One qmd daemon in a temporary root folder."""

    def __init__(self, root: Path, iso: Path):
        self.root = root
        self.iso = iso
        self.proc = None
        self.port = None
        self.command_prefix = []    # e.g. ["ip", "netns", "exec", NAME]
        iso_dir = root / "var/lib/vz/template/iso"
        iso_dir.mkdir(parents=True)
        os.link(iso, iso_dir / "qm-test-guest.iso") if _same_fs(iso, iso_dir) else \
            shutil.copy(iso, iso_dir / "qm-test-guest.iso")
        (root / "etc/pve").mkdir(parents=True, exist_ok=True)
        (root / "etc/pve/storage.cfg").write_text(
            f"dir: local\n\tpath {root}/var/lib/vz\n\tcontent images,iso,snippets\n")
        (root / "password").write_text(PASSWORD + "\n")
        self.env = dict(os.environ, QM_ROOT=str(root),
                        QM_HELPER_DIR=str(BUILD / "src" / "net"))

    def start(self):
        port_file = self.root / "port"
        if port_file.exists():
            port_file.unlink()
        self.log = open(self.root / "qmd.log", "ab")
        self.proc = subprocess.Popen(
            [*self.command_prefix,
             str(QMD), "--root", str(self.root), "--listen", "127.0.0.1", "--port", "0",
             "--port-file", str(port_file), "--node", NODE,
             "--password-file", str(self.root / "password")],
            stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError("qmd exited at start: " + self.log_text())
            if time.monotonic() > deadline:
                raise RuntimeError("qmd did not start listening within 10 s")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.api = self.connect()

    def connect(self, **kwargs):
        args = dict(port=self.port, user="root@pam", password=PASSWORD, verify_ssl=False)
        args.update(kwargs)
        return ProxmoxAPI("127.0.0.1", **args)

    def stop(self):
        """Stops qmd with SIGTERM; the VMs keep running."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def log_text(self):
        return (self.root / "qmd.log").read_text(errors="replace")

    def raw(self, method, path, **data):
        """Sends one authenticated request with requests and returns the response."""
        if not hasattr(self, "_login") or self._login[0] != self.port:
            login = requests.post(self.url("/access/ticket"),
                                  data={"username": "root@pam", "password": PASSWORD},
                                  verify=False).json()["data"]
            self._login = (self.port, login)
        login = self._login[1]
        return requests.request(method, self.url(path), data=data or None, verify=False,
                                cookies={"PVEAuthCookie": login["ticket"]},
                                headers={"CSRFPreventionToken": login["CSRFPreventionToken"]})

    def url(self, path):
        return f"https://127.0.0.1:{self.port}/api2/json{path}"

    @property
    def vms(self):
        return self.api.nodes(NODE).qemu

    def qm(self, *args, check=True, input=None):
        result = subprocess.run([str(QM), *map(str, args)], env=self.env, text=True,
                                capture_output=True, input=input, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"qm {' '.join(map(str, args))} failed "
                                 f"({result.returncode}): {result.stderr}")
        return result

    def wait_task(self, upid, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.api.nodes(NODE).tasks(upid).status.get()
            if status["status"] == "stopped":
                return status
            time.sleep(0.1)
        raise AssertionError(f"task {upid} still running after {timeout} s")

    def run_task(self, upid, timeout=120):
        status = self.wait_task(upid, timeout)
        assert status["exitstatus"] == "OK", self.task_log(upid)
        return status

    def task_log(self, upid):
        lines = self.api.nodes(NODE).tasks(upid).log.get(limit=1000)
        return "\n".join(line["t"] for line in lines)

    def pid(self, vmid):
        path = self.root / f"run/qemu-server/{vmid}.pid"
        return int(path.read_text()) if path.exists() else None

    def create_guest_vm(self, vmid, **extra):
        params = dict(vmid=vmid, name=f"guest{vmid}", memory=128, cores=1, kvm=0, agent=1,
                      ide2="local:iso/qm-test-guest.iso,media=cdrom", boot="order=ide2",
                      net0="virtio", serial0="socket")
        params.update(extra)
        self.run_task(self.vms.post(**params))

    def status(self, vmid):
        return self.vms(vmid).status.current.get()

    def wait_status(self, vmid, status, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status(vmid)["status"] == status:
                return
            time.sleep(0.1)
        raise AssertionError(f"VM {vmid} not {status} after {timeout} s")

    def agent_ping(self, vmid, timeout=GUEST_BOOT_TIMEOUT):
        """Waits until the guest agent of a VM replies to guest-ping."""
        path = str(self.root / f"run/qemu-server/{vmid}.qga")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if _agent_exchange(path, "guest-ping"):
                    return time.monotonic()
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"guest agent of VM {vmid} did not answer in {timeout} s")

    def wait_serial(self, vmid, text, timeout=GUEST_BOOT_TIMEOUT):
        """Reads the VM's serial console (a socket) until text appears."""
        path = str(self.root / f"run/qemu-server/{vmid}.serial0")
        deadline = time.monotonic() + timeout
        seen = b""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            s.settimeout(1)
            while text not in seen:
                if time.monotonic() > deadline:
                    raise AssertionError(f"VM {vmid} did not print {text!r} in {timeout} s")
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    continue
                if not chunk:
                    raise AssertionError(f"serial console of VM {vmid} closed")
                seen = seen[-4096:] + chunk

    def kill_vms(self):
        for pidfile in (self.root / "run/qemu-server").glob("*.pid"):
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass


def _same_fs(a: Path, b: Path):
    return os.stat(a).st_dev == os.stat(b).st_dev


def _agent_exchange(path, command):
    """Runs one guest-agent command with guest-sync-delimited framing."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(path)
        sync_id = random.randint(1, 2**31)
        s.sendall(json.dumps({"execute": "guest-sync-delimited",
                              "arguments": {"id": sync_id}}).encode() + b"\n")
        buf = b""
        while str(sync_id).encode() not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return False
            buf += chunk
        s.sendall(json.dumps({"execute": command}).encode() + b"\n")
        reply = b""
        while b"\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                return False
            reply += chunk
        return "return" in json.loads(reply.split(b"\n")[0])


@pytest.fixture
def node(tmp_path, guest_iso):
    n = Node(tmp_path / "node", guest_iso)
    n.start()
    yield n
    n.kill_vms()
    n.stop()
