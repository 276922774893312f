"""Disks through the API on real dir (qcow2, raw) and btrfs storages."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import NODE

GIB = 1024 ** 3


def conf(node, vmid):
    return (node.root / f"etc/pve/qemu-server/{vmid}.conf").read_text()


def images(node, vmid, storage_dir=None):
    base = Path(storage_dir) if storage_dir else node.root / "var/lib/vz"
    folder = base / "images" / str(vmid)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def add_storage(node, text):
    cfg = node.root / "etc/pve/storage.cfg"
    cfg.write_text(cfg.read_text() + text)


def img_info(path):
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def task_log(node, upid):
    """The whole log of a task, read without proxmoxer's handling of "total"."""
    response = node.raw("GET", f"/nodes/{NODE}/tasks/{upid}/log", limit=100000)
    return "\n".join(line["t"] for line in response.json()["data"])


def task_error(node, upid):
    status = node.wait_task(upid)
    assert status["exitstatus"] != "OK"
    return status["exitstatus"]


@pytest.fixture
def btrfs(tmp_path):
    """A btrfs file system on a loop device, mounted under the test's folder."""
    if "btrfs" not in Path("/proc/filesystems").read_text():
        pytest.skip("the kernel has no btrfs")
    if not shutil.which("mkfs.btrfs"):
        pytest.skip("mkfs.btrfs is missing (Debian package btrfs-progs)")
    image = tmp_path / "btrfs.img"
    mnt = tmp_path / "btrfs"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(300 * 1024 * 1024)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(["mount", loop, str(mnt)], check=True)
        try:
            yield mnt
        finally:
            unmount(mnt)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def unmount(mnt):
    """Unmounts mnt, waiting up to 10 s for processes (a killed QEMU) to let go of it."""
    deadline = time.monotonic() + 10
    while subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "--lazy", str(mnt)], check=False)
            return
        time.sleep(0.2)


@pytest.fixture
def tiny(tmp_path):
    """A 16 MiB tmpfs mounted under the test's folder, to fill up."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_alloc_on_create_and_config(node):
    upid = node.vms.post(vmid=200, scsi0="local:1", virtio0="local:0.001,format=raw")
    node.run_task(upid)
    text = conf(node, 200)
    assert "scsi0: local:200/vm-200-disk-0.qcow2,size=1G\n" in text
    assert "virtio0: local:200/vm-200-disk-1.raw,size=1049K\n" in text
    assert "lock" not in text
    assert images(node, 200) == ["vm-200-disk-0.qcow2", "vm-200-disk-1.raw"]
    assert img_info(node.root / "var/lib/vz/images/200/vm-200-disk-0.qcow2")[
        "virtual-size"] == GIB

    # POST config allocates in a task; PUT waits and returns null.
    node.run_task(node.vms(200).config.post(scsi1="local:1,format=vmdk"))
    assert "scsi1: local:200/vm-200-disk-2.vmdk,size=1G" in conf(node, 200)
    assert node.vms(200).config.put(sata0="local:0.5") is None
    assert "sata0: local:200/vm-200-disk-3.qcow2,size=512M" in conf(node, 200)
    log = task_log(node, upid)
    assert "allocated volume 'local:200/vm-200-disk-0.qcow2'" in log


def test_detach_unused_unlink_rescan_destroy(node, tmp_path):
    node.run_task(node.vms.post(vmid=201, scsi0="local:1", scsi1="local:1", scsi2="local:1"))
    # A volume of another VM and an ISO: referenced, never freed.
    node.run_task(node.vms.post(vmid=202, scsi0="local:1"))
    node.vms(201).config.put(scsi3="local:202/vm-202-disk-0.qcow2",
                             ide2="local:iso/qm-test-guest.iso,media=cdrom")

    node.vms(201).config.put(delete="scsi1")
    text = conf(node, 201)
    assert "scsi1" not in text
    assert "unused0: local:201/vm-201-disk-1.qcow2" in text
    assert "vm-201-disk-1.qcow2" in images(node, 201)

    # Deleting unusedN frees its volume.
    node.vms(201).config.put(delete="unused0")
    assert "unused0" not in conf(node, 201)
    assert "vm-201-disk-1.qcow2" not in images(node, 201)

    # unlink without force detaches, with force frees.
    node.vms(201).unlink.put(idlist="scsi2")
    assert "unused0: local:201/vm-201-disk-2.qcow2" in conf(node, 201)
    node.vms(201).unlink.put(idlist="unused0,scsi0", force=1)
    assert images(node, 201) == []

    # rescan adds a stray volume of this VM as unusedN.
    stray = node.root / "var/lib/vz/images/201/vm-201-disk-7.raw"
    stray.write_bytes(b"\0" * 4096)
    node.run_task(node.vms(201).rescan.post())
    assert "unused0: local:201/vm-201-disk-7.raw" in conf(node, 201)

    node.run_task(node.vms(201).delete())
    assert not (node.root / "etc/pve/qemu-server/201.conf").exists()
    assert images(node, 201) == []
    assert images(node, 202) == ["vm-202-disk-0.qcow2"]
    assert (node.root / "var/lib/vz/template/iso/qm-test-guest.iso").exists()


def test_destroy_unreferenced_disks(node):
    node.run_task(node.vms.post(vmid=203, scsi0="local:0.01"))
    stray = node.root / "var/lib/vz/images/203/vm-203-disk-5.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(stray), "1M"], check=True,
                   capture_output=True)
    node.run_task(node.vms(203).delete(**{"destroy-unreferenced-disks": 1}))
    assert images(node, 203) == []


def test_bad_disk_requests_change_nothing(node, tmp_path):
    node.run_task(node.vms.post(vmid=204, scsi0="local:0.01"))
    before = conf(node, 204)
    cases = {
        "local:0": "larger than zero",
        "nowhere:1": "does not exist",
        "local:1,format=vdi": "vdi",
        "local:100000000000": "too large",
        "local:0,import-from=/nonexistent.qcow2": "import-from",
        "local:1,import-from=/etc/hostname": "import-from",
        "local:0,import-from=local:100/../../../etc/shadow.raw": "invalid path",
    }
    for value, words in cases.items():
        response = node.raw("PUT", f"/nodes/{NODE}/qemu/204/config", scsi1=value)
        assert response.status_code in (400, 404), (value, response.text)
        assert words in response.text, (value, response.text)
    assert conf(node, 204) == before
    assert images(node, 204) == ["vm-204-disk-0.qcow2"]
    # A create that fails leaves no configuration behind.
    response = node.raw("POST", f"/nodes/{NODE}/qemu", vmid=205, scsi0="nowhere:1")
    assert response.status_code == 400
    assert "does not exist" in response.text
    assert not (node.root / "etc/pve/qemu-server/205.conf").exists()


def test_other_storage_types_are_refused_by_name(node):
    add_storage(node, "lvmthin: thin\n\tvgname pve\n\tthinpool data\n"
                      "rbd: ceph\n\tpool rbd\n\tcontent images\n")
    node.run_task(node.vms.post(vmid=206))
    for storage, kind in (("thin", "lvmthin"), ("ceph", "rbd")):
        response = node.raw("PUT", f"/nodes/{NODE}/qemu/206/config", scsi0=f"{storage}:1")
        assert response.status_code == 400
        assert f"'{kind}'" in response.text


def test_full_storage_and_failed_import_leave_nothing(tiny, node):
    add_storage(node, f"dir: tiny\n\tpath {tiny}\n\tcontent images\n\tformat raw\n")
    source = node.root / "big.raw"
    with open(source, "wb") as f:
        # Real data, so that the copy really needs the space.
        for _ in range(32):
            f.write(os.urandom(1024 * 1024))
    node.run_task(node.vms.post(vmid=207))
    before = conf(node, 207)
    upid = node.vms(207).config.post(scsi0=f"tiny:0,import-from={source}")
    error = task_error(node, upid)
    assert "qemu-img" in error
    assert conf(node, 207) == before
    assert images(node, 207, tiny) == []
    log = task_log(node, upid)
    assert "freed volume" in log and "again" in log

    # Creating a VM that fails the same way leaves neither config nor volume.
    upid = node.vms.post(vmid=208, scsi0=f"tiny:0,import-from={source}")
    task_error(node, upid)
    assert not (node.root / "etc/pve/qemu-server/208.conf").exists()
    assert images(node, 208, tiny) == []


def test_import_from_and_resize_offline(node):
    source = node.root / "source.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(source), "64M"], check=True,
                   capture_output=True)
    upid = node.vms.post(vmid=209, scsi0=f"local:0,import-from={source},discard=on")
    node.run_task(upid)
    assert "scsi0: local:209/vm-209-disk-0.qcow2,discard=on,size=64M" in conf(node, 209)
    assert "transferred 100%" in task_log(node, upid)
    assert source.exists()

    node.run_task(node.vms(209).resize.put(disk="scsi0", size="+64M"))
    assert "size=128M" in conf(node, 209)
    node.run_task(node.vms(209).resize.put(disk="scsi0", size="1G"))
    assert "size=1G" in conf(node, 209)
    path = node.root / "var/lib/vz/images/209/vm-209-disk-0.qcow2"
    assert img_info(path)["virtual-size"] == GIB
    error = task_error(node, node.vms(209).resize.put(disk="scsi0", size="512M"))
    assert "shrinking" in error
    assert "size=1G" in conf(node, 209)


def test_move_disk_offline_between_formats_and_btrfs(btrfs, node):
    add_storage(node, f"btrfs: butter\n\tpath {btrfs}\n\tcontent images\n"
                      f"dir: rawdir\n\tpath {node.root}/rawdir\n\tformat raw\n")
    node.run_task(node.vms.post(vmid=210, scsi0="local:0.01"))
    qcow2 = node.root / "var/lib/vz/images/210/vm-210-disk-0.qcow2"
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", str(qcow2)],
                   check=True, capture_output=True)

    # To btrfs: a subvolume with disk.raw; the source stays as unused0.
    node.run_task(node.vms(210).move_disk.post(disk="scsi0", storage="butter"))
    text = conf(node, 210)
    assert "scsi0: butter:210/vm-210-disk-0.raw,size=10486K" in text
    assert "unused0: local:210/vm-210-disk-0.qcow2" in text
    raw = btrfs / "images/210/vm-210-disk-0/disk.raw"
    assert raw.read_bytes()[:1024 * 1024] == b"\x5a" * 1024 * 1024
    info = subprocess.run(["btrfs", "subvolume", "show", str(raw.parent)],
                          capture_output=True, text=True)
    assert info.returncode == 0, info.stderr

    # Back to raw on a dir storage with delete=1: the btrfs subvolume goes.
    node.run_task(node.vms(210).move_disk.post(disk="scsi0", storage="rawdir", delete=1))
    assert "scsi0: rawdir:210/vm-210-disk-0.raw" in conf(node, 210)
    assert not raw.parent.exists()
    assert (node.root / "rawdir/images/210/vm-210-disk-0.raw").read_bytes()[:4] == b"\x5a" * 4

    response = node.raw("POST", f"/nodes/{NODE}/qemu/210/move_disk", disk="scsi0",
                        storage="rawdir")
    assert response.status_code == 400
    assert "same format" in response.text

    # btrfs allocation, resize and destroy.
    node.vms(210).config.put(scsi1="butter:0.01")
    assert "scsi1: butter:210/vm-210-disk-0.raw,size=10486K" in conf(node, 210)
    node.run_task(node.vms(210).resize.put(disk="scsi1", size="+10M"))
    assert (btrfs / "images/210/vm-210-disk-0/disk.raw").stat().st_size == (10486 + 10240) * 1024
    node.run_task(node.vms(210).delete())
    assert images(node, 210, btrfs) == []
    assert images(node, 210, node.root / "rawdir") == []
    assert images(node, 210) == []


def agent(node, vmid, command, arguments=None, timeout=10):
    """Runs one guest-agent command and returns its "return" member."""
    import random
    import socket
    path = str(node.root / f"run/qemu-server/{vmid}.qga")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        sync_id = random.randint(1, 2**31)
        s.sendall(json.dumps({"execute": "guest-sync-delimited",
                              "arguments": {"id": sync_id}}).encode() + b"\n")
        buf = b""
        while str(sync_id).encode() not in buf:
            buf += s.recv(4096)
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while b"\n" not in reply:
            reply += s.recv(65536)
        answer = json.loads(reply.split(b"\n")[0])
        assert "return" in answer, answer
        return answer["return"]


def guest_sh(node, vmid, script, timeout=30):
    """Runs a shell script in the guest and returns its standard output."""
    import base64
    pid = agent(node, vmid, "guest-exec", {"path": "/bin/sh", "arg": ["-c", script],
                                           "capture-output": True})["pid"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = agent(node, vmid, "guest-exec-status", {"pid": pid})
        if status["exited"]:
            assert status.get("exitcode") == 0, status
            return base64.b64decode(status.get("out-data", "")).decode()
        time.sleep(0.2)
    raise AssertionError(f"guest command did not end in {timeout} s: {script}")


def test_running_guest_writes_resize_and_move_online(btrfs, node):
    add_storage(node, f"btrfs: butter\n\tpath {btrfs}\n\tcontent images\n")
    node.create_guest_vm(220, virtio0="local:0.0625")
    node.run_task(node.vms(220).status.start.post())
    node.agent_ping(220)
    guest_sh(node, 220, "echo qm-guest-data | dd of=/dev/vda bs=512 conv=fsync 2>/dev/null")

    # Online resize goes through QMP block_resize; the guest sees the new size.
    node.run_task(node.vms(220).resize.put(disk="virtio0", size="+64M"))
    assert "size=128M" in conf(node, 220)
    sectors = guest_sh(node, 220, "cat /sys/block/vda/size").strip()
    assert int(sectors) * 512 == 128 * 1024 * 1024

    # Online move: a mirror job to btrfs while the guest keeps writing.
    guest_sh(node, 220, "(while true; do date | dd of=/dev/vda bs=512 seek=4096 "
                        "conv=fsync 2>/dev/null; done) >/dev/null 2>&1 &")
    upid = node.vms(220).move_disk.post(disk="virtio0", storage="butter", delete=1)
    node.run_task(upid)
    assert "mirror virtio0" in task_log(node, upid)
    assert "virtio0: butter:220/vm-220-disk-0.raw" in conf(node, 220)
    assert images(node, 220) == []
    assert guest_sh(node, 220, "dd if=/dev/vda bs=16 count=1 2>/dev/null") \
        .startswith("qm-guest-data")
    node.run_task(node.vms(220).status.stop.post())
    raw = btrfs / "images/220/vm-220-disk-0/disk.raw"
    assert raw.read_bytes()[:13] == b"qm-guest-data"
    assert raw.stat().st_size == 128 * 1024 * 1024


def test_efidisk_tpmstate_and_ovmf_start(node):
    if not shutil.which("swtpm"):
        pytest.skip("swtpm is missing (Debian package swtpm)")
    node.run_task(node.vms.post(vmid=221, bios="ovmf", kvm=0, memory=128,
                                efidisk0="local:1,efitype=4m", tpmstate0="local:1"))
    text = conf(node, 221)
    assert "efidisk0: local:221/vm-221-disk-0.qcow2,efitype=4m,size=528K" in text
    assert "tpmstate0: local:221/vm-221-disk-1.raw,size=4M" in text
    vars_path = node.root / "var/lib/vz/images/221/vm-221-disk-0.qcow2"
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2",
                    "/usr/share/OVMF/OVMF_VARS_4M.fd", str(vars_path)], check=True)
    node.run_task(node.vms(221).status.start.post())
    pidfile = node.root / "run/qemu-server/221.swtpm.pid"
    swtpm_pid = int(pidfile.read_text())
    assert Path(f"/proc/{swtpm_pid}/comm").read_text().strip() == "swtpm"
    node.run_task(node.vms(221).status.stop.post())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{swtpm_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{swtpm_pid}").exists()

    # OVMF without efidisk0 gets a fresh copy of the vars template.
    node.run_task(node.vms.post(vmid=222, bios="ovmf", kvm=0, memory=128))
    status = node.wait_task(node.vms(222).status.start.post())
    # Proxmox VE warns about the temporary vars file, and so does qmd.
    assert status["exitstatus"] == "WARNINGS: 1"
    temp = node.root / "run/qemu-server/efidisk/222-ovmf.fd"
    assert temp.stat().st_size == Path("/usr/share/OVMF/OVMF_VARS.fd").stat().st_size
    node.run_task(node.vms(222).status.stop.post())
