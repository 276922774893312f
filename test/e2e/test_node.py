"""A node running real VMs: create, boot, power operations, errors, restarts."""

import os
import signal
import time

import pytest
import requests
from proxmoxer.core import ResourceException

from conftest import NODE, PASSWORD


def test_guest_boots_and_acpi_shutdown_stops_it(node):
    node.create_guest_vm(100)
    assert node.status(100)["status"] == "stopped"

    node.run_task(node.vms(100).status.start.post())
    status = node.status(100)
    assert status["status"] == "running"
    assert status["qmpstatus"] == "running"
    assert status["pid"] == node.pid(100)
    node.agent_ping(100)

    listed = {vm["vmid"]: vm for vm in node.vms.get()}
    assert listed[100]["status"] == "running"
    assert listed[100]["name"] == "guest100"

    # With the agent enabled, shutdown goes through the agent, as in Proxmox VE.
    upid = node.vms(100).status.shutdown.post(timeout=60)
    node.run_task(upid)
    assert "shutting down through the guest agent" in node.task_log(upid)
    assert node.status(100)["status"] == "stopped"
    assert node.pid(100) is None


def test_acpi_shutdown_without_agent(node):
    node.create_guest_vm(130, agent=0)
    node.run_task(node.vms(130).status.start.post())
    # The guest's acpid powers it off on the ACPI power button once it runs.
    node.wait_serial(130, b"qm-test-guest: ready")
    upid = node.vms(130).status.shutdown.post(timeout=60)
    node.run_task(upid)
    assert "guest agent" not in node.task_log(upid)
    assert node.status(130)["status"] == "stopped"


def test_start_again_and_hard_stop(node):
    node.create_guest_vm(101)
    node.run_task(node.vms(101).status.start.post())
    pid = node.pid(101)
    node.run_task(node.vms(101).status.stop.post())
    assert node.status(101)["status"] == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    node.run_task(node.vms(101).status.start.post())
    assert node.status(101)["status"] == "running"
    assert node.pid(101) != pid
    node.run_task(node.vms(101).status.stop.post())


def test_qemu_killed_from_outside_is_reported_stopped(node):
    node.create_guest_vm(102)
    node.run_task(node.vms(102).status.start.post())
    os.kill(node.pid(102), signal.SIGKILL)
    node.wait_status(102, "stopped", timeout=10)
    assert node.status(102)["qmpstatus"] == "stopped"
    assert not (node.root / "run/qemu-server/102.pid").exists()


def test_guest_poweroff_from_inside_is_reported_stopped(node):
    node.create_guest_vm(103)
    node.run_task(node.vms(103).status.start.post())
    node.agent_ping(103)
    # qemu-ga's guest-shutdown runs the guest's shutdown shim.
    from conftest import _agent_exchange
    try:
        _agent_exchange(str(node.root / "run/qemu-server/103.qga"), "guest-shutdown")
    except OSError:
        pass
    node.wait_status(103, "stopped", timeout=30)


def test_forced_stop_after_shutdown_timeout(node):
    node.create_guest_vm(104)
    node.run_task(node.vms(104).status.start.post())
    # A paused guest cannot react to the power button.
    node.run_task(node.vms(104).status.suspend.post())
    assert node.status(104)["qmpstatus"] == "paused"

    upid = node.vms(104).status.shutdown.post(timeout=1)
    status = node.wait_task(upid)
    assert status["exitstatus"] == "VM quit/powerdown failed - got timeout"
    assert node.status(104)["status"] == "running"

    node.run_task(node.vms(104).status.shutdown.post(timeout=1, forceStop=1))
    assert node.status(104)["status"] == "stopped"


def test_suspend_resume_reset(node):
    node.create_guest_vm(105)
    node.run_task(node.vms(105).status.start.post())
    node.run_task(node.vms(105).status.suspend.post())
    assert node.status(105)["qmpstatus"] == "paused"
    node.run_task(node.vms(105).status.resume.post())
    assert node.status(105)["qmpstatus"] == "running"
    pid = node.pid(105)
    node.run_task(node.vms(105).status.reset.post())
    assert node.status(105)["status"] == "running"
    assert node.pid(105) == pid
    node.run_task(node.vms(105).status.stop.post())


def test_qmd_restart_keeps_vms_running(node):
    node.create_guest_vm(106)
    node.run_task(node.vms(106).status.start.post())
    pid = node.pid(106)
    node.stop()
    os.kill(pid, 0)  # QEMU outlives the daemon

    node.start()
    status = node.status(106)
    assert status["status"] == "running"
    assert status["pid"] == pid
    node.agent_ping(106)
    node.run_task(node.vms(106).status.shutdown.post(timeout=60))
    assert node.status(106)["status"] == "stopped"


def test_seccomp_filter_is_active(node):
    status = open(f"/proc/{node.proc.pid}/status").read()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Seccomp"].strip() == "2"
    assert int(fields["Seccomp_filters"].strip()) >= 1


def test_unknown_vm_is_an_error(node):
    with pytest.raises(ResourceException) as exc:
        node.status(999)
    assert exc.value.status_code == 500
    assert "does not exist" in str(exc.value)
    with pytest.raises(ResourceException):
        node.vms(999).status.start.post()


def test_malformed_property_is_rejected_and_nothing_written(node):
    response = node.raw("POST", f"/nodes/{NODE}/qemu", vmid=110, memory="lots", cores=1)
    assert response.status_code == 400
    assert "memory" in response.json()["errors"]
    assert "cores" not in response.json()["errors"]
    assert not (node.root / "etc/pve/qemu-server/110.conf").exists()

    node.create_guest_vm(111)
    before = (node.root / "etc/pve/qemu-server/111.conf").read_text()
    response = node.raw("PUT", f"/nodes/{NODE}/qemu/111/config", cores="-3")
    assert response.status_code == 400
    assert "cores" in response.json()["errors"]
    response = node.raw("PUT", f"/nodes/{NODE}/qemu/111/config", bogus="1")
    assert response.status_code == 400
    assert "bogus" in response.json()["errors"]
    assert (node.root / "etc/pve/qemu-server/111.conf").read_text() == before


def test_requests_without_credentials_are_refused(node):
    url = node.url(f"/nodes/{NODE}/qemu")
    response = requests.get(url, verify=False)
    assert response.status_code == 401
    response = requests.post(node.url(f"/nodes/{NODE}/qemu"), data={"vmid": 120},
                             verify=False)
    assert response.status_code == 401
    assert not (node.root / "etc/pve/qemu-server/120.conf").exists()

    login = requests.post(node.url("/access/ticket"),
                          data={"username": "root@pam", "password": "wrong"}, verify=False)
    assert login.status_code == 401


def test_write_with_ticket_needs_csrf_token(node):
    login = requests.post(node.url("/access/ticket"),
                          data={"username": "root@pam", "password": PASSWORD},
                          verify=False).json()["data"]
    cookies = {"PVEAuthCookie": login["ticket"]}
    url = node.url(f"/nodes/{NODE}/qemu")
    assert requests.get(url, cookies=cookies, verify=False).status_code == 200

    refused = requests.post(url, data={"vmid": 121}, cookies=cookies, verify=False)
    assert refused.status_code == 401
    assert not (node.root / "etc/pve/qemu-server/121.conf").exists()

    accepted = requests.post(url, data={"vmid": 121, "memory": 128}, cookies=cookies,
                             headers={"CSRFPreventionToken": login["CSRFPreventionToken"]},
                             verify=False)
    assert accepted.status_code == 200
    assert (node.root / "etc/pve/qemu-server/121.conf").exists()


def test_digest_mismatch_is_refused(node):
    node.create_guest_vm(122)
    config = node.vms(122).config.get()
    node.vms(122).config.put(name="first", digest=config["digest"])
    with pytest.raises(ResourceException) as exc:
        node.vms(122).config.put(name="second", digest=config["digest"])
    assert exc.value.status_code == 409
    assert node.vms(122).config.get()["name"] == "first"


def test_running_vm_changes_go_pending(node):
    node.create_guest_vm(123)
    node.run_task(node.vms(123).status.start.post())
    node.vms(123).config.put(memory=256, name="renamed")
    pending = {item["key"]: item for item in node.vms(123).pending.get()}
    assert pending["memory"]["value"] == "128"
    assert pending["memory"]["pending"] == "256"
    assert "pending" not in pending["name"]
    assert node.vms(123).config.get(current=1)["memory"] == "128"
    assert node.vms(123).config.get()["memory"] == "256"
    node.run_task(node.vms(123).status.stop.post())


def test_destroy_refused_while_running(node):
    node.create_guest_vm(124)
    node.run_task(node.vms(124).status.start.post())
    with pytest.raises(ResourceException) as exc:
        node.vms(124).delete()
    assert "running" in str(exc.value)
    assert (node.root / "etc/pve/qemu-server/124.conf").exists()
    node.run_task(node.vms(124).status.stop.post())
    node.run_task(node.vms(124).delete())
    assert not (node.root / "etc/pve/qemu-server/124.conf").exists()


def test_api_token_authenticates(node):
    import subprocess
    # Tokens are added to the node's files; the API then accepts them.
    from conftest import QMD  # noqa: F401  (the binary exists once the suite runs)
    token_cfg = node.root / "etc/pve/priv/token.cfg"
    token_cfg.write_text("root@pam!ci 11111111-2222-4333-8444-555555555555\n")
    api = node.connect(user="root@pam", token_name="ci",
                       token_value="11111111-2222-4333-8444-555555555555", password=None)
    assert api.nodes(NODE).qemu.get() == []
    bad = node.connect(user="root@pam", token_name="ci", token_value="wrong", password=None)
    with pytest.raises(ResourceException) as exc:
        bad.nodes(NODE).qemu.get()
    assert exc.value.status_code == 401
    del subprocess


def test_task_list_and_log(node):
    node.create_guest_vm(125)
    upid = node.vms(125).status.start.post()
    node.run_task(upid)
    tasks = node.api.nodes(NODE).tasks.get(vmid=125)
    assert any(t["upid"] == upid and t["status"] == "OK" for t in tasks)
    assert node.task_log(upid).splitlines()[-1] == "TASK OK"
    node.run_task(node.vms(125).status.stop.post())


def test_pending_disk_removal_keeps_volume_as_unused(node):
    node.create_guest_vm(126, sata0="local:0.01")
    volume = node.vms(126).config.get()["sata0"].split(",")[0]
    node.run_task(node.vms(126).status.start.post())
    node.vms(126).config.put(delete="sata0")
    pending = {item["key"]: item for item in node.vms(126).pending.get()}
    assert pending["sata0"]["delete"] == 1

    node.run_task(node.vms(126).status.stop.post())
    node.run_task(node.vms(126).status.start.post())
    config = node.vms(126).config.get(current=1)
    assert "sata0" not in config
    assert config["unused0"] == volume
    node.run_task(node.vms(126).status.stop.post())


def test_json_object_parameter_is_rejected(node):
    url = node.url("/access/ticket")
    response = requests.post(url, json={"username": {"a": 1}, "password": "x"}, verify=False)
    assert response.status_code == 400
    assert "is an object" in response.json()["message"]
    # The daemon is still there.
    assert node.api.nodes.get()[0]["node"] == NODE


def test_reload_keeps_running_vms_controllable(node):
    node.create_guest_vm(127)
    node.run_task(node.vms(127).status.start.post())
    pid = node.pid(127)
    node.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    status = node.status(127)
    assert status["pid"] == pid
    pending = node.vms(127).monitor.post(command="info status")
    assert "running" in pending
    node.run_task(node.vms(127).status.stop.post())
    assert node.status(127)["status"] == "stopped"
    node.run_task(node.vms(127).status.start.post())
    assert node.status(127)["status"] == "running"
    node.run_task(node.vms(127).status.stop.post())
    assert "process 0 exited" not in node.log_text()


def test_foreign_process_with_pidfile_is_not_adopted(node):
    import subprocess
    node.create_guest_vm(128)
    pidfile = node.root / "run/qemu-server/128.pid"
    impostor = subprocess.Popen(["/usr/bin/python3", "-c", "import time; time.sleep(60)",
                                 "-pidfile", str(pidfile)])
    try:
        pidfile.write_text(f"{impostor.pid}\n")
        node.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert node.status(128)["status"] == "stopped"
        node.run_task(node.vms(128).status.stop.post())
        assert impostor.poll() is None
    finally:
        impostor.kill()
        impostor.wait()


def test_unsafe_values_are_rejected(node):
    node.create_guest_vm(129)
    before = (node.root / "etc/pve/qemu-server/129.conf").read_text()
    cases = {
        "ide2": "local:iso/../../../etc/passwd,media=cdrom",
        "ide0": "local:129/../../../../etc/passwd",
        "cores": "9223372036854775807999",
        "memory": "99999999999999999999999",
    }
    for key, value in cases.items():
        response = node.raw("PUT", f"/nodes/{NODE}/qemu/129/config", **{key: value})
        assert response.status_code == 400, key
        assert key in response.json()["errors"], key
    assert (node.root / "etc/pve/qemu-server/129.conf").read_text() == before

    node.vms(129).config.put(cores=9223372036854775807, sockets=2)
    response = node.raw("GET", f"/nodes/{NODE}/qemu/129/showcmd")
    assert response.status_code == 400
    assert "vcpus allowed" in response.json()["message"]


def test_status_reports_cpu_and_boot_disk(node):
    node.create_guest_vm(131, scsi0="local:0.01", boot="order=ide2;scsi0")
    listed = {vm["vmid"]: vm for vm in node.vms.get()}
    # The boot order's first disk with a size: the CD-ROM has none.
    assert listed[131]["maxdisk"] == 10486 * 1024
    node.run_task(node.vms(131).status.start.post())
    node.status(131)
    time.sleep(1.5)
    # The guest boots under TCG, which keeps QEMU busy.
    cpu = node.status(131)["cpu"]
    assert 0 < cpu <= 1.5
    node.run_task(node.vms(131).status.stop.post())


def test_cluster_resources_and_nextid(node):
    """Ansible's proxmox_kvm module finds VMs through /cluster/resources."""
    assert node.api.cluster.nextid.get() == "100"
    node.create_guest_vm(100)
    node.create_guest_vm(102)
    assert node.api.cluster.nextid.get() == "101"
    with pytest.raises(ResourceException):
        node.api.cluster.nextid.get(vmid=102)
    assert node.api.cluster.nextid.get(vmid=150) == "150"

    vms = node.api.cluster.resources.get(type="vm")
    by_id = {vm["id"]: vm for vm in vms}
    assert set(by_id) == {"qemu/100", "qemu/102"}
    assert by_id["qemu/100"]["node"] == NODE
    assert by_id["qemu/100"]["type"] == "qemu"
    assert by_id["qemu/100"]["name"] == "guest100"
    assert by_id["qemu/100"]["status"] == "stopped"
    everything = node.api.cluster.resources.get()
    assert {"node/" + NODE, "qemu/100", "qemu/102"} <= {r["id"] for r in everything}


def test_lost_qmp_connection_is_restored(node):
    import socket as socket_module
    node.create_guest_vm(132)
    node.run_task(node.vms(132).status.start.post())
    node.stop()
    # QEMU serves one QMP client at a time: while this client is connected,
    # the restarted qmd cannot complete its handshake.
    holder = socket_module.socket(socket_module.AF_UNIX)
    holder.connect(str(node.root / "run/qemu-server/132.qmp"))
    holder.recv(4096)
    node.start()
    time.sleep(6)
    assert node.status(132)["status"] == "running"
    response = node.raw("POST", f"/nodes/{NODE}/qemu/132/monitor", command="info status")
    assert response.status_code == 500
    holder.close()

    # The heartbeat reconnects within its interval.
    deadline = time.monotonic() + 30
    while True:
        response = node.raw("POST", f"/nodes/{NODE}/qemu/132/monitor", command="info status")
        if response.status_code == 200:
            break
        assert time.monotonic() < deadline, response.text
        time.sleep(1)
    assert "running" in response.json()["data"]
    node.run_task(node.vms(132).status.stop.post())
