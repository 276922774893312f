"""Tap devices of VMs with a bridge, plugged by the pve-bridge helper.

Every test runs in a network namespace of its own with a bridge vmbr0. The
qmd of a test runs inside that namespace, so QEMU creates its tap devices
there and runs the helper there; QM_HELPER_DIR points generated command
lines at the helper in the build folder. The test process itself enters the
network namespace to reach qmd's HTTPS port on its loopback.
"""

import ctypes
import itertools
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BUILD, Node

HELPER = BUILD / "src" / "net" / "qm-bridge"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_netns_ids = itertools.count()


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns failed: {os.strerror(errno)}")


class Netns:
    """A network namespace with loopback up and a bridge vmbr0."""

    def __init__(self):
        self.name = f"qmtest-{os.getpid()}-{next(_netns_ids)}"
        self._saved_fd = None
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.ip("link", "set", "lo", "up")
        # A kernel without CONFIG_BRIDGE_VLAN_FILTERING rejects vlan_filtering.
        made = subprocess.run(["ip", "-n", self.name, "link", "add", "vmbr0", "type", "bridge",
                               "vlan_filtering", "1"], capture_output=True)
        self.vlan_aware = made.returncode == 0
        if not self.vlan_aware:
            self.ip("link", "add", "vmbr0", "type", "bridge")
        self.ip("link", "set", "vmbr0", "up")

    def ip(self, *args, check=True):
        return subprocess.run(["ip", "-n", self.name, *args], check=check, capture_output=True,
                              text=True)

    def link(self, name):
        """Returns `ip -d link show` of one interface as a dict, or None when it is missing."""
        result = self.ip("-j", "-d", "link", "show", "dev", name, check=False)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)[0]

    def vlans(self, name):
        """Returns {vid: flags} of a bridge port from `bridge vlan show`."""
        out = subprocess.run(["bridge", "-n", self.name, "-j", "vlan", "show", "dev", name],
                             check=True, capture_output=True, text=True).stdout
        vlans = {}
        for port in json.loads(out or "[]"):
            for vlan in port.get("vlans", []):
                first = vlan["vlan"]
                for vid in range(first, vlan.get("vlanEnd", first) + 1):
                    vlans[vid] = set(vlan.get("flags", []))
        return vlans

    def enter(self):
        """Moves the calling thread into the namespace."""
        self._saved_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        ns_fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(ns_fd)
        finally:
            os.close(ns_fd)

    def leave(self):
        if self._saved_fd is not None:
            _setns(self._saved_fd)
            os.close(self._saved_fd)
            self._saved_fd = None

    def delete(self):
        self.leave()
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


class NetnsNode(Node):
    """A qmd inside a network namespace."""

    def __init__(self, root, iso, netns):
        super().__init__(root, iso)
        self.netns = netns
        # ip netns exec execs qmd, so the pid is qmd's.
        self.command_prefix = ["ip", "netns", "exec", netns.name]

    def wait_link_gone(self, name, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.netns.link(name) is None:
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} still exists {timeout} s after the VM stopped")


@pytest.fixture
def netns():
    ns = Netns()
    yield ns
    ns.delete()


@pytest.fixture
def bridged_node(tmp_path, guest_iso, netns):
    netns.enter()
    node = NetnsNode(tmp_path / "node", guest_iso, netns)
    try:
        node.start()
        yield node
    finally:
        node.kill_vms()
        node.stop()
        netns.leave()


def test_tap_plugged_into_bridge(bridged_node):
    node, ns = bridged_node, bridged_node.netns
    net0 = "virtio,bridge=vmbr0,mtu=1400" + (",tag=10" if ns.vlan_aware else "")
    node.create_guest_vm(100, net0=net0)
    node.run_task(node.vms(100).status.start.post())
    assert node.status(100)["status"] == "running"

    tap = ns.link("tap100i0")
    assert tap is not None, "QEMU created no tap100i0"
    assert tap.get("master") == "vmbr0"
    assert tap["mtu"] == 1400
    assert "UP" in tap["flags"]
    assert "PROMISC" in tap["flags"]
    if ns.vlan_aware:
        vlans = ns.vlans("tap100i0")
        assert set(vlans) == {10}
        assert {"PVID", "Egress Untagged"} <= vlans[10]

    node.run_task(node.vms(100).status.stop.post())
    assert node.status(100)["status"] == "stopped"
    node.wait_link_gone("tap100i0")


def test_vlan_tag_on_vlan_aware_bridge(bridged_node):
    node, ns = bridged_node, bridged_node.netns
    if not ns.vlan_aware:
        pytest.skip("this kernel cannot make a VLAN-aware bridge (no CONFIG_BRIDGE_VLAN_FILTERING)")
    node.create_guest_vm(101, net0="virtio,bridge=vmbr0,tag=10,mtu=1400")
    node.run_task(node.vms(101).status.start.post())

    tap = ns.link("tap101i0")
    assert tap.get("master") == "vmbr0"
    assert tap["mtu"] == 1400
    assert "UP" in tap["flags"]
    vlans = ns.vlans("tap101i0")
    assert set(vlans) == {10}
    assert {"PVID", "Egress Untagged"} <= vlans[10]

    node.run_task(node.vms(101).status.stop.post())
    node.wait_link_gone("tap101i0")


def test_missing_bridge_fails_start(bridged_node):
    node, ns = bridged_node, bridged_node.netns
    node.create_guest_vm(102, net0="virtio,bridge=vmbr9")
    status = node.wait_task(node.vms(102).status.start.post())
    log = node.task_log(status["upid"])

    assert status["exitstatus"] != "OK"
    assert "bridge 'vmbr9'" in log
    assert "does not exist" in log
    assert "tap102i0" in log
    assert node.status(102)["status"] == "stopped"
    assert node.pid(102) is None
    assert ns.link("tap102i0") is None


def test_tag_without_vlan_support_fails_start(bridged_node):
    node, ns = bridged_node, bridged_node.netns
    # vmbr1 has no VLAN filtering and no physical port to make vmbr1v5 from.
    ns.ip("link", "add", "vmbr1", "type", "bridge")
    ns.ip("link", "set", "vmbr1", "up")
    node.create_guest_vm(103, net0="virtio,bridge=vmbr1,tag=5")
    status = node.wait_task(node.vms(103).status.start.post())
    log = node.task_log(status["upid"])

    assert status["exitstatus"] != "OK"
    assert "bridge vmbr1 is not VLAN-aware" in log
    assert "VLAN 5" in log
    assert node.status(103)["status"] == "stopped"
    assert ns.link("tap103i0") is None


# The helper on its own, on persistent tap devices, without QEMU.

@pytest.fixture
def helper_root(tmp_path):
    conf_dir = tmp_path / "etc/pve/qemu-server"
    conf_dir.mkdir(parents=True)
    return tmp_path


def _write_conf(root, vmid, **nets):
    lines = ["memory: 128"] + [f"{key}: {value}" for key, value in nets.items()]
    (root / f"etc/pve/qemu-server/{vmid}.conf").write_text("\n".join(lines) + "\n")


def _run_helper(ns, root, *args):
    return subprocess.run(["ip", "netns", "exec", ns.name, str(HELPER), *args],
                          env=dict(os.environ, QM_ROOT=str(root)), capture_output=True,
                          text=True, timeout=30)


def _add_tap(ns, name):
    ns.ip("tuntap", "add", name, "mode", "tap")


def test_helper_plugs_and_unplugs(netns, helper_root):
    _write_conf(helper_root, 200, net0="virtio=BC:24:11:00:00:01,bridge=vmbr0")
    _add_tap(netns, "tap200i0")

    plugged = _run_helper(netns, helper_root, "tap200i0")
    assert plugged.returncode == 0, plugged.stderr
    tap = netns.link("tap200i0")
    assert tap.get("master") == "vmbr0"
    assert tap["mtu"] == netns.link("vmbr0")["mtu"]
    if netns.vlan_aware:
        vlans = netns.vlans("tap200i0")
        assert set(vlans) == set(range(1, 4095))
        assert {"PVID", "Egress Untagged"} <= vlans[1]

    unplugged = _run_helper(netns, helper_root, "--down", "tap200i0")
    assert unplugged.returncode == 0, unplugged.stderr
    assert netns.link("tap200i0").get("master") is None
    # QEMU may run the down script after the tap is gone.
    gone = _run_helper(netns, helper_root, "--down", "tap200i9")
    assert gone.returncode == 0, gone.stderr


def test_helper_trunks_on_vlan_aware_bridge(netns, helper_root):
    if not netns.vlan_aware:
        pytest.skip("this kernel cannot make a VLAN-aware bridge (no CONFIG_BRIDGE_VLAN_FILTERING)")
    _write_conf(helper_root, 201, net1="virtio=BC:24:11:00:00:02,bridge=vmbr0,tag=7,trunks=20;30-32")
    _add_tap(netns, "tap201i1")

    result = _run_helper(netns, helper_root, "tap201i1")
    assert result.returncode == 0, result.stderr
    vlans = netns.vlans("tap201i1")
    assert set(vlans) == {7, 20, 30, 31, 32}
    assert {"PVID", "Egress Untagged"} <= vlans[7]
    assert "PVID" not in vlans[20]


def test_helper_rejects_bad_input(netns, helper_root):
    _write_conf(helper_root, 202, net0="virtio=BC:24:11:00:00:03,bridge=vmbr0,mtu=9000")
    _add_tap(netns, "tap202i0")
    cases = [
        (("tapx",), "invalid interface name 'tapx'"),
        (("tap202i5",), "VM 202 has no net5"),
        (("tap203i0",), "203.conf"),
        (("tap202i0",), "unable to set MTU 9000 on tap202i0: bridge vmbr0 has the smaller MTU"),
    ]
    for args, message in cases:
        result = _run_helper(netns, helper_root, *args)
        assert result.returncode != 0, args
        assert message in result.stderr, result.stderr
    assert netns.link("tap202i0").get("master") is None


def test_helper_rate_limit(netns, helper_root):
    if not shutil.which("tc"):
        pytest.skip("tc is not installed")
    _write_conf(helper_root, 204, net0="virtio=BC:24:11:00:00:04,bridge=vmbr0,rate=5")
    _add_tap(netns, "tap204i0")

    result = _run_helper(netns, helper_root, "tap204i0")
    if result.returncode != 0 and "'/sbin/tc filter add' failed" in result.stderr:
        pytest.skip("this kernel has no basic classifier or police action: " + result.stderr)
    assert result.returncode == 0, result.stderr
    qdiscs = json.loads(_tc_show(netns, "qdisc", "tap204i0"))
    assert {"htb", "ingress"} <= {q["kind"] for q in qdiscs}
    classes = json.loads(_tc_show(netns, "class", "tap204i0"))
    assert [c["handle"] for c in classes if c["class"] == "htb"] == ["1:1"]


def _tc_show(ns, what, dev):
    return subprocess.run(["tc", "-n", ns.name, "-j", what, "show", "dev", dev], check=True,
                          capture_output=True, text=True).stdout
