"""The qm tool against a real qmd, and the daemon's systemd integration."""

import json
import os
import subprocess
import signal
import socket
import time

from conftest import NODE


def test_qm_create_start_status_list_stop(node):
    node.qm("create", 200, "--name", "viaqm", "--memory", 128, "--kvm", 0, "--agent", 1,
            "--ide2", "local:iso/qm-test-guest.iso,media=cdrom", "--boot", "order=ide2",
            "--net0", "virtio", "--serial0", "socket")
    config = node.qm("config", 200).stdout
    assert "name: viaqm\n" in config
    assert "memory: 128\n" in config
    assert "net0: virtio=BC:24:11:" in config

    assert node.qm("status", 200).stdout == "status: stopped\n"
    node.qm("start", 200)
    assert node.qm("status", 200).stdout == "status: running\n"

    listing = node.qm("list").stdout.splitlines()
    assert listing[0].split() == ["VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"]
    row = listing[1].split()
    assert row[:4] == ["200", "viaqm", "running", "128"]
    assert int(row[5]) == node.pid(200)

    verbose = node.qm("status", 200, "--verbose").stdout
    assert "qmpstatus: running\n" in verbose
    as_json = json.loads(node.qm("status", 200, "--output-format", "json").stdout)
    assert as_json["status"] == "running"

    node.agent_ping(200)
    node.qm("shutdown", 200, "--timeout", 60)
    assert node.qm("status", 200).stdout == "status: stopped\n"


def test_qm_power_operations_and_monitor(node):
    node.create_guest_vm(201)
    node.qm("start", 201)
    node.qm("suspend", 201)
    assert "qmpstatus: paused" in node.qm("status", 201, "--verbose").stdout
    node.qm("resume", 201)
    assert "qmpstatus: running" in node.qm("status", 201, "--verbose").stdout
    node.qm("reset", 201)

    out = node.qm("monitor", 201, input="info status\nquit\n").stdout
    assert "VM status: running" in out

    node.qm("stop", 201)
    assert node.qm("status", 201).stdout == "status: stopped\n"


def test_qm_reboot_restarts_qemu(node):
    node.create_guest_vm(202)
    node.qm("start", 202)
    node.agent_ping(202)
    pid = node.pid(202)
    node.qm("reboot", 202, "--timeout", 60)
    assert node.qm("status", 202).stdout == "status: running\n"
    assert node.pid(202) != pid
    node.qm("stop", 202)


def test_qm_set_pending_and_destroy(node):
    node.create_guest_vm(203)
    node.qm("set", 203, "--name", "renamed", "--cores", 2)
    config = node.qm("config", 203).stdout
    assert "name: renamed\n" in config
    assert "cores: 2\n" in config

    node.qm("start", 203)
    node.qm("set", 203, "--memory", 256)
    pending = node.qm("pending", 203).stdout
    assert "cur memory: 128" in pending
    assert "new memory: 256" in pending
    assert "memory: 128\n" in node.qm("config", 203, "--current").stdout
    node.qm("stop", 203)
    # A start applies the pending change.
    node.qm("start", 203)
    assert "memory: 256\n" in node.qm("config", 203, "--current").stdout
    node.qm("stop", 203)

    node.qm("set", 203, "--delete", "cores")
    assert "cores:" not in node.qm("config", 203).stdout
    node.qm("destroy", 203)
    assert not (node.root / "etc/pve/qemu-server/203.conf").exists()


def test_qm_errors_are_clear(node):
    result = node.qm("status", 299, check=False)
    assert result.returncode != 0
    assert "does not exist" in result.stderr

    result = node.qm("create", 204, "--memory", "lots", check=False)
    assert result.returncode != 0
    assert "memory" in result.stderr
    assert not (node.root / "etc/pve/qemu-server/204.conf").exists()

    result = node.qm("start", "abc", check=False)
    assert result.returncode != 0
    assert "invalid VM id 'abc'" in result.stderr


def test_qm_without_daemon_says_so(node):
    node.create_guest_vm(205)
    node.stop()
    result = node.qm("list", check=False)
    assert result.returncode != 0
    assert "is qmd running?" in result.stderr
    # config and showcmd read the files and need no daemon.
    assert "name: guest205\n" in node.qm("config", 205).stdout
    showcmd = node.qm("showcmd", 205, "--pretty").stdout
    assert "-name 'guest205,debug-threads=on'" in showcmd or "-name guest205" in showcmd
    assert "accel=tcg" in showcmd


def test_systemd_notify_and_reload(tmp_path, guest_iso):
    from conftest import Node

    notify_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    listener.settimeout(10)
    n = Node(tmp_path / "node", guest_iso)
    n.env["NOTIFY_SOCKET"] = notify_path
    n.start()
    try:
        assert listener.recv(256) == b"READY=1"
        # READY comes once the API listens: a request works right away.
        assert n.api.nodes.get()[0]["node"] == NODE

        n.proc.send_signal(signal.SIGHUP)
        assert listener.recv(256) == b"RELOADING=1"
        assert listener.recv(256) == b"READY=1"
        assert n.proc.poll() is None

        n.proc.send_signal(signal.SIGTERM)
        assert listener.recv(256) == b"STOPPING=1"
        assert n.proc.wait(timeout=10) == 0
    finally:
        n.kill_vms()
        n.stop()
        listener.close()


def test_log_lines_name_the_vm(node):
    node.create_guest_vm(206)
    node.qm("start", 206)
    node.qm("stop", 206)
    lines = node.log_text().splitlines()
    vm_lines = [line for line in lines if "VM 206:" in line]
    assert any("stopped -> starting" in line for line in vm_lines)
    assert any("QEMU process" in line and "exited" in line for line in vm_lines)
    assert all(line.startswith("<") for line in lines if line)


def test_guest_agent_commands(node):
    node.create_guest_vm(207)
    node.qm("start", 207)
    node.agent_ping(207)

    assert node.vms(207).agent.ping.post() == {"result": {}}
    osinfo = node.vms(207).agent("get-osinfo").get()["result"]
    assert "kernel-release" in osinfo
    assert json.loads(node.qm("guest", "cmd", 207, "get-host-name").stdout) == \
        {"host-name": "qm-test-guest"}

    status = json.loads(node.qm("guest", "exec", 207, "--", "/bin/sh", "-c", "echo hi; exit 3").stdout)
    assert status["exited"] is True
    assert status["exitcode"] == 3
    assert status["out-data"] == "hi\n"

    result = node.vms(207).agent("set-user-password").post(username="root",
                                                           password="new-secret")
    assert result == {"result": {}}
    response = node.raw("POST", f"/nodes/{NODE}/qemu/207/agent/set-user-password",
                        username="root", password="abc")
    assert response.status_code == 400
    assert "password" in response.json()["errors"]

    assert node.vms(207).agent("file-write").post(file="/tmp/note", content="line 1\nline 2\n") \
        is None
    assert node.vms(207).agent("file-read").get(file="/tmp/note") == \
        {"content": "line 1\nline 2\n"}
    assert node.vms(207).agent("file-read").get(file="/tmp/note", count=4) == \
        {"content": "line", "truncated": 1}
    response = node.raw("GET", f"/nodes/{NODE}/qemu/207/agent/file-read?file=/missing")
    assert response.status_code == 500
    assert "Agent error" in response.json()["message"]

    response = node.raw("POST", f"/nodes/{NODE}/qemu/207/agent", command="bogus")
    assert response.status_code == 400
    node.qm("stop", 207)
    result = node.qm("guest", "cmd", 207, "ping", check=False)
    assert result.returncode != 0
    assert "not running" in result.stderr


def test_agent_not_configured(node):
    node.create_guest_vm(208, agent=0)
    node.qm("start", 208)
    result = node.qm("guest", "cmd", 208, "ping", check=False)
    assert result.returncode != 0
    assert "No QEMU guest agent configured" in result.stderr
    node.qm("stop", 208)


def test_hookscript_phases(node):
    snippets = node.root / "var/lib/vz/snippets"
    snippets.mkdir(parents=True)
    log = node.root / "hook.log"
    hook = snippets / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1 $2\" >> {log}\necho hook says $2\n"
                    f"[ -e {node.root}/fail-$2 ] && exit 1\nexit 0\n")
    hook.chmod(0o755)
    node.create_guest_vm(209, hookscript="local:snippets/hook.sh")

    node.qm("start", 209)
    node.qm("stop", 209)
    deadline = time.monotonic() + 10
    while "post-stop" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "post-stop hook did not run"
        time.sleep(0.1)
    assert log.read_text().split("\n")[:4] == \
        ["209 pre-start", "209 post-start", "209 pre-stop", "209 post-stop"]

    (node.root / "fail-pre-start").touch()
    result = node.qm("start", 209, check=False)
    assert result.returncode != 0
    assert "hookscript error for 209 on pre-start" in result.stderr
    assert "hook says pre-start" in result.stdout
    assert node.qm("status", 209).stdout == "status: stopped\n"


def test_qm_disk_commands(node):
    node.create_guest_vm(210, scsi0="local:0.01")
    node.qm("disk", "resize", 210, "scsi0", "+10M")
    config = node.qm("config", 210).stdout
    # 0.01 GiB is 10486 KiB (rounded up), plus 10 MiB.
    assert "scsi0: local:210/vm-210-disk-0.qcow2,size=20726K" in config

    node.qm("disk", "move", 210, "scsi0", "local", "--format", "raw")
    config = node.qm("config", 210).stdout
    assert "scsi0: local:210/vm-210-disk-1.raw" in config
    assert "unused0: local:210/vm-210-disk-0.qcow2" in config

    node.qm("disk", "unlink", 210, "--idlist", "unused0", "--force", 1)
    assert "unused0" not in node.qm("config", 210).stdout
    assert not (node.root / "var/lib/vz/images/210/vm-210-disk-0.qcow2").exists()

    # A volume that no key names comes back as unusedN.
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                    str(node.root / "var/lib/vz/images/210/vm-210-disk-5.qcow2"), "1M"],
                   check=True)
    node.qm("disk", "rescan", "--vmid", 210)
    assert "unused0: local:210/vm-210-disk-5.qcow2" in node.qm("config", 210).stdout

    result = node.qm("disk", "resize", 210, "scsi0", check=False)
    assert result.returncode != 0
    assert "missing argument 'size'" in result.stderr
