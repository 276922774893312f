"""Disk hotplug on running guests, and the events of an online move_disk."""

import os
import re
import time

from conftest import NODE
from test_storage import add_storage, conf, guest_sh, images, task_log
from test_storage import tiny  # noqa: F401 (a fixture: importing it makes pytest find it)

MIB = 1024 * 1024
SIZE_16M = "0.015625"   # 16 MiB in GiB, as STORAGE:SIZE takes it


def current(text):
    """The current configuration: the file up to its first [section]."""
    return re.split(r"^\[", text, maxsplit=1, flags=re.M)[0]


def pending(text):
    """The [PENDING] section of a configuration file, or ""."""
    match = re.search(r"^\[PENDING\]\n(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    return match.group(1) if match else ""


def block_devices(node, vmid):
    return set(guest_sh(node, vmid, "ls /sys/block").split())


def wait_block_devices(node, vmid, check, timeout=20):
    """Waits until check(set of /sys/block names) is true; returns the last set."""
    deadline = time.monotonic() + timeout
    while True:
        names = block_devices(node, vmid)
        if check(names) or time.monotonic() > deadline:
            return names
        time.sleep(0.5)


def set_config(node, vmid, **params):
    """POSTs a configuration change and returns its finished task's log."""
    upid = node.vms(vmid).config.post(**params)
    status = node.wait_task(upid)
    log = task_log(node, upid)
    assert status["exitstatus"] in ("OK", "WARNINGS: 1"), log
    return status["exitstatus"], log


def hot_add_write_remove(node, vmid, key, volume):
    """Hot-adds key with a new 16 MiB raw volume, writes to it, hot-removes it."""
    before = block_devices(node, vmid)
    status, log = set_config(node, vmid, **{key: f"local:{SIZE_16M},format=raw"})
    assert status == "OK", log
    assert f"{key}: hot-plug done" in log
    text = conf(node, vmid)
    assert f"{key}: local:{vmid}/{volume},size=16M" in current(text)
    assert key not in pending(text)

    after = wait_block_devices(node, vmid, lambda names: len(names - before) == 1)
    added = after - before
    assert len(added) == 1, f"guest block devices before {before}, after {after}"
    disk = added.pop()
    size = guest_sh(node, vmid, f"cat /sys/block/{disk}/size").strip()
    assert int(size) * 512 == 16 * MIB
    guest_sh(node, vmid, f"echo hotplug-{key} | dd of=/dev/{disk} bs=512 conv=fsync "
                         "2>/dev/null")

    status, log = set_config(node, vmid, delete=key)
    assert status == "OK", log
    assert f"{key}: hot-unplug done" in log
    gone = wait_block_devices(node, vmid, lambda names: disk not in names)
    assert disk not in gone
    text = conf(node, vmid)
    assert not re.search(rf"^{key}: ", current(text), flags=re.M)
    assert re.search(rf"^unused\d+: local:{vmid}/{volume}$", current(text), flags=re.M)
    assert pending(text) == ""
    path = node.root / f"var/lib/vz/images/{vmid}/{volume}"
    assert path.read_bytes().startswith(f"hotplug-{key}".encode())


def test_hotplug_scsi_pci_and_virtio(node):
    node.create_guest_vm(300, scsihw="virtio-scsi-pci")
    node.run_task(node.vms(300).status.start.post())
    node.agent_ping(300)

    hot_add_write_remove(node, 300, "scsi1", "vm-300-disk-0.raw")
    hot_add_write_remove(node, 300, "virtio1", "vm-300-disk-1.raw")
    # Removing scsi1 also removed its controller, which scsi2 adds again.
    hot_add_write_remove(node, 300, "scsi2", "vm-300-disk-2.raw")
    assert images(node, 300) == ["vm-300-disk-0.raw", "vm-300-disk-1.raw",
                                 "vm-300-disk-2.raw"]


def test_hotplug_scsi_single(node):
    # scsi0 at boot puts the bridge of the per-disk controllers (pci.3) there.
    node.create_guest_vm(301, scsihw="virtio-scsi-single", scsi0=f"local:{SIZE_16M}")
    node.run_task(node.vms(301).status.start.post())
    node.agent_ping(301)

    hot_add_write_remove(node, 301, "scsi1", "vm-301-disk-1.raw")
    log = set_config(node, 301, scsi2=f"local:{SIZE_16M},iothread=1")[1]
    assert "device_add virtioscsi2 (virtio-scsi-pci)" in log
    assert "object-add iothread-virtioscsi2" in log
    assert "scsi2: local:301/vm-301-disk-2.qcow2" in current(conf(node, 301))
    # unlink hot-unplugs too, and force=1 frees the volume.
    node.vms(301).unlink.put(idlist="scsi2", force=1)
    text = conf(node, 301)
    assert "scsi2" not in text
    assert "vm-301-disk-2.qcow2" not in text
    assert "vm-301-disk-2.qcow2" not in images(node, 301)
    assert pending(text) == ""


def test_not_hotpluggable_stays_pending(node):
    node.create_guest_vm(302, virtio1=f"local:{SIZE_16M}")
    node.run_task(node.vms(302).status.start.post())

    # IDE cannot be hot-plugged: the new drive waits in [PENDING].
    status, log = set_config(node, 302, ide1=f"local:{SIZE_16M}")
    assert status == "OK", log
    assert "ide1: the change stays pending until the next start" in log
    text = conf(node, 302)
    assert "ide1: local:302/vm-302-disk-1.qcow2" in pending(text)
    assert "ide1" not in current(text)

    # QEMU rejects aio=native without O_DIRECT: the new volume stays named in [PENDING].
    status, log = set_config(node, 302, scsi3=f"local:{SIZE_16M},aio=native,cache=writeback")
    assert status == "WARNINGS: 1", log
    assert "scsi3: hot-plug failed, so the change stays pending" in log
    assert "aio=native" in log
    assert "drive-scsi3" in log
    text = conf(node, 302)
    assert "scsi3: local:302/vm-302-disk-2.qcow2" in pending(text)
    assert "vm-302-disk-2.qcow2" in images(node, 302)

    # A paused guest cannot release a PCI device: the deletion stays pending.
    node.run_task(node.vms(302).status.suspend.post())
    started = time.monotonic()
    status, log = set_config(node, 302, delete="virtio1")
    assert time.monotonic() - started >= 5
    assert status == "WARNINGS: 1", log
    assert "device virtio1 was not removed within 5 s" in log
    text = conf(node, 302)
    assert "virtio1: local:302/vm-302-disk-0.qcow2" in current(text)
    assert re.search(r"^delete: .*virtio1", pending(text), flags=re.M)

    # Without "disk" in the hotplug option nothing is hot-plugged.
    node.run_task(node.vms.post(vmid=304, memory=128, kvm=0, hotplug="network,usb"))
    node.run_task(node.vms(304).status.start.post())
    status, log = set_config(node, 304, virtio2=f"local:{SIZE_16M}")
    assert status == "OK", log
    assert "the hotplug option of this VM does not include 'disk'" in log
    text = conf(node, 304)
    assert "virtio2: local:304/vm-304-disk-0.qcow2" in pending(text)
    assert "virtio2" not in current(text)


def test_move_disk_reports_mirror_error(tiny, node):
    add_storage(node, f"dir: tiny\n\tpath {tiny}\n\tcontent images\n\tformat raw\n")
    node.run_task(node.vms.post(vmid=303, memory=128, kvm=0,
                                scsi0="local:0.03125,format=raw"))
    # Real data, so that the 32 MiB copy needs more than the 16 MiB the target has.
    source = node.root / "var/lib/vz/images/303/vm-303-disk-0.raw"
    with open(source, "r+b") as f:
        f.write(os.urandom(32 * MIB))
    node.run_task(node.vms(303).status.start.post())

    upid = node.vms(303).move_disk.post(disk="scsi0", storage="tiny")
    status = node.wait_task(upid)
    log = task_log(node, upid)
    assert status["exitstatus"] != "OK", log
    assert "No space left on device" in status["exitstatus"], log
    assert "mirror scsi0: write error" in log
    assert "scsi0: local:303/vm-303-disk-0.raw" in conf(node, 303)
    assert images(node, 303, tiny) == []
    assert node.status(303)["status"] == "running"
