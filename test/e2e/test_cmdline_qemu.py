"""Generated command lines started by the installed, upstream QEMU.

Each case writes one VM configuration (all under TCG, `kvm: 0`) into a node,
prints its command line with `qm showcmd`, starts the VM through the API,
checks that QEMU runs and reports "running" over QMP, and stops it. This
shows that the upstream branch of the generator emits options that the QEMU
binary of this machine (Debian's 7.2 when this was written) accepts.

Disk values may name a volume to create. "@qcow2" and "@raw" become a new
16 MiB image made with qemu-img, and "@tpm" an empty 4 MiB raw image for
swtpm. "@efivars" and "@efivars-ms" become a raw copy of the OVMF 4 MiB vars
template, plain or with Microsoft keys enrolled.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import Node

OVMF_DIR = Path("/usr/share/OVMF")
RENDER_NODE = any(Path("/dev/dri").glob("renderD*"))
HUGETLBFS = any(line.split()[2:3] == ["hugetlbfs"]
                for line in Path("/proc/mounts").read_text().splitlines())


def needs(condition, reason):
    return [pytest.mark.skipif(not condition, reason=reason)]


# Like qemu-server, the generator rejects more vCPUs than the host has.
TWO_CPUS = needs((os.cpu_count() or 1) >= 2, "the host has fewer than 2 CPUs")


# Each case: id, configuration, substrings the command line must contain
# (or, after "!", must not contain), and optionally the marks that skip it.
# Every VM also gets "kvm: 0" and "memory: 128" unless set.
CASES = [
    ("i440fx-smp-vcpus",
     {"sockets": 2, "cores": 1, "vcpus": 1, "cpulimit": 2, "cpuunits": 500},
     ["-smp '1,sockets=2,cores=1,maxcpus=2'", "accel=tcg"],
     TWO_CPUS),
    ("i440fx-pinned-7.1",
     {"machine": "pc-i440fx-7.1", "localtime": 1, "tablet": 0},
     ["type=pc-i440fx-7.1", "base=localtime", "!usb-tablet"]),
    ("q35-intel-viommu",
     {"machine": "q35,viommu=intel", "ostype": "l26"},
     ["intel-iommu", "type=q35"]),
    ("q35-virtio-viommu-pinned",
     {"machine": "pc-q35-7.0,viommu=virtio"},
     ["virtio-iommu-pci", "type=pc-q35-7.0"]),
    ("cpu-flags-aes",
     {"cpu": "qemu64,flags=+aes", "startdate": "2020-01-01T10:00:00"},
     ["-cpu qemu64,", "+aes", "base=2020-01-01T10:00:00"]),
    ("cpu-max",
     {"cpu": "max", "acpi": 0, "balloon": 0},
     ["-cpu max", "acpi=off", "!virtio-balloon-pci"]),
    ("memory-balloon-shares",
     {"memory": 256, "balloon": 128, "shares": 2000},
     ["virtio-balloon-pci", "-m 256", "!mem-merge"]),
    ("memory-cpu-hotplug-numa",
     {"memory": 1536, "hotplug": "memory,cpu,disk,network,usb", "numa": 1,
      "sockets": 2, "cores": 1},
     ["maxmem=", "pc-dimm,id=dimm0", "memdev=ram-node1"],
     TWO_CPUS),
    ("numa-nodes",
     {"memory": 512, "numa": 1, "sockets": 2, "cores": 1,
      "numa0": "cpus=0,memory=256", "numa1": "cpus=1,memory=256"},
     ["memory-backend-ram,id=ram-node1,size=256M",
      "node,nodeid=0,cpus=0,memdev=ram-node0"],
     TWO_CPUS),
    ("ide-sata-qcow2-raw",
     {"ide0": "@qcow2,cache=writeback", "sata0": "@raw,ssd=1,discard=on",
      "boot": "order=sata0;ide0;net0", "net0": "e1000"},
     ["ide-hd", "ahci", "rotation_rate=1"]),
    ("scsi-lsi",
     {"scsihw": "lsi", "scsi0": "@qcow2,cache=unsafe"},
     ["lsi,id=scsihw0", "scsi-hd"]),
    ("scsi-lsi53c810",
     {"scsihw": "lsi53c810", "scsi0": "@raw"},
     ["lsi53c810,id=scsihw0"]),
    ("scsi-megasas",
     {"scsihw": "megasas", "scsi0": "@qcow2,aio=threads"},
     ["megasas,id=scsihw0"]),
    ("scsi-pvscsi",
     {"scsihw": "pvscsi", "scsi0": "@qcow2"},
     ["pvscsi,id=scsihw0"]),
    ("scsi-virtio-pci",
     {"scsihw": "virtio-scsi-pci", "scsi0": "@qcow2,discard=on,ssd=1",
      "scsi1": "@raw,cache=none,aio=native"},
     ["virtio-scsi-pci,id=scsihw0", "aio=native"]),
    ("scsi-virtio-single-iothread",
     {"scsihw": "virtio-scsi-single", "scsi0": "@qcow2,iothread=1,aio=io_uring",
      "scsi1": "@raw,iothread=1"},
     ["iothread-virtioscsi0", "virtio-scsi-pci,id=virtioscsi1"]),
    ("virtio-blk-throttle",
     {"virtio0": "@qcow2,mbps_rd=10,iops_wr=100,cache=none,aio=native,iothread=1",
      "virtio1": "@raw,mbps_wr=5,iops_rd=50,iops_rd_max=80,discard=on",
      "boot": "order=virtio1;virtio0"},
     ["virtio-blk-pci", "throttling.bps-read=10485760", "throttling.iops-write=100"]),
    ("ovmf-efidisk-4m-i440fx",
     {"bios": "ovmf", "efidisk0": "@efivars,efitype=4m,pre-enrolled-keys=0"},
     ["OVMF_CODE_4M.fd", "drive-efidisk0"]),
    ("ovmf-efidisk-secboot-q35",
     {"bios": "ovmf", "machine": "q35",
      "efidisk0": "@efivars-ms,efitype=4m,pre-enrolled-keys=1"},
     ["OVMF_CODE_4M.secboot.fd", "drive-efidisk0"]),
    ("tpmstate-swtpm",
     {"bios": "ovmf", "machine": "q35", "efidisk0": "@efivars,efitype=4m",
      "tpmstate0": "@tpm,version=v2.0"},
     ["tpm-tis", "swtpm"],
     needs(shutil.which("swtpm"), "swtpm is missing (Debian package swtpm)")),
    ("net-models-user",
     {"net0": "virtio,queues=2,mtu=1400", "net1": "e1000e", "net2": "rtl8139",
      "net3": "vmxnet3", "net4": "i82551", "net5": "e1000", "net6": "pcnet",
      "net7": "e1000-82545em,link_down=1"},
     ["type=user,id=net0", "vmxnet3", "i82551", "mac=BC:24:11:"]),
    ("vga-std-serial",
     {"vga": "std,memory=32", "serial0": "socket", "serial1": "socket"},
     ["VGA,id=vga", "isa-serial,chardev=serial0"]),
    ("vga-cirrus",
     {"vga": "cirrus"},
     ["cirrus-vga"]),
    ("vga-vmware",
     {"vga": "vmware"},
     ["vmware-svga"]),
    ("vga-qxl-spice-usb-audio",
     {"vga": "qxl", "usb0": "spice", "usb1": "host=1234:5678", "machine": "q35",
      "audio0": "device=ich9-intel-hda,driver=spice"},
     ["qxl-vga", "-spice", "x509-cert-file=", "usb-redir",
      "usb-host,vendorid=0x1234,productid=0x5678", "hda-duplex", "spice,id=spice-backend0"]),
    ("audio-ac97-none",
     {"audio0": "device=AC97,driver=none"},
     ["AC97,id=audiodev0", "-audiodev 'none,id=none-backend0'"]),
    ("vga-virtio-gl",
     {"vga": "virtio-gl"},
     ["virtio-vga-gl", "egl-headless"],
     needs(RENDER_NODE, "no GPU render node (/dev/dri/renderD*) for egl-headless")),
    ("windows-ovmf-cdrom",
     {"ostype": "win11", "machine": "q35", "bios": "ovmf", "cpu": "qemu64",
      "efidisk0": "@efivars,efitype=4m,pre-enrolled-keys=0",
      "ide2": "local:iso/qm-test-guest.iso,media=cdrom", "sata0": "@qcow2",
      "boot": "order=ide2;sata0"},
     ["driftfix=slew,base=localtime", "OVMF_CODE_4M.secboot.fd", "bootindex=100"]),
    ("cdrom-empty-scsi",
     {"ide2": "none,media=cdrom", "scsi0": "@raw,backup=0,replicate=0",
      "scsi1": "local:iso/qm-test-guest.iso,media=cdrom", "boot": "order=scsi1;scsi0;ide2"},
     ["media=cdrom", "scsi-cd"]),
    ("vga-virtio",
     {"vga": "virtio,memory=64"},
     ["virtio-vga"]),
    ("vga-serial0",
     {"vga": "serial0", "serial0": "socket"},
     ["-nographic"]),
    ("vga-none",
     {"vga": "none", "watchdog": "model=ib700,action=reset"},
     ["-vga none", "ib700"]),
    ("rng-watchdog-agent",
     {"rng0": "source=/dev/urandom,max_bytes=1024,period=1000",
      "watchdog": "model=i6300esb,action=pause", "agent": "1,fstrim_cloned_disks=1"},
     ["virtio-rng-pci", "i6300esb", "org.qemu.guest_agent.0"]),
    ("smbios-vmgenid-args",
     {"smbios1": "uuid=6cf17dc3-8341-4ecc-aebd-7503f2583fb3,manufacturer=UFZFLCBUZXN0,"
                 "product=VGVzdA==,base64=1",
      "vmgenid": "b6b7f9a5-1b2c-4d3e-8f9a-0b1c2d3e4f50", "args": "-no-reboot"},
     ["vmgenid,guid=b6b7f9a5-1b2c-4d3e-8f9a-0b1c2d3e4f50", "manufacturer=PVE,, Test",
      "-no-reboot"]),
    ("smbios-plain-q35",
     {"machine": "q35", "smbios1": "uuid=0d2b7a48-3e0f-4d1e-9c41-5b3f2a1c0e77,"
                                   "manufacturer=Example,serial=ABC123"},
     ["manufacturer=Example,serial=ABC123"]),
    ("hugepages",
     {"memory": 256, "numa": 1, "hugepages": "2"},
     ["hugepages"],
     needs(HUGETLBFS, "no hugetlbfs mounted on this host")),
]

# Start-task warnings that a case must log. Every other case starts with "OK".
WARNINGS = {
    "net-models-user": ["netdev net0: ignoring queues '2', user networking has one queue",
                        "netdev net0: ignoring MTU '1400', no bridge configured"],
}


def case_params():
    for case in CASES:
        marks = case[3] if len(case) > 3 else ()
        yield pytest.param(*case[:3], marks=marks, id=case[0])


@pytest.fixture(scope="module")
def qm_node(tmp_path_factory, guest_iso):
    """One node for all cases, which run one after the other."""
    node = Node(tmp_path_factory.mktemp("cmdline") / "node", guest_iso)
    node.start()
    yield node
    node.kill_vms()
    node.stop()


def create_volume(node, vmid, index, spec):
    """Creates the image a "@..." placeholder names and returns its volume id."""
    folder = node.root / "var/lib/vz/images" / str(vmid)
    folder.mkdir(parents=True, exist_ok=True)
    if spec == "@qcow2":
        name = f"vm-{vmid}-disk-{index}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(folder / name), "16M"],
                       check=True)
    elif spec in ("@raw", "@tpm"):
        name = f"vm-{vmid}-disk-{index}.raw"
        size = "4M" if spec == "@tpm" else "16M"
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(folder / name), size],
                       check=True)
    elif spec in ("@efivars", "@efivars-ms"):
        name = f"vm-{vmid}-disk-{index}.raw"
        template = "OVMF_VARS_4M.ms.fd" if spec == "@efivars-ms" else "OVMF_VARS_4M.fd"
        shutil.copy(OVMF_DIR / template, folder / name)
    else:
        raise ValueError(f"unknown volume placeholder {spec}")
    return f"local:{vmid}/{name}"


def write_config(node, vmid, name, props):
    """Writes VMID.conf directly, creating the volumes its placeholders name."""
    values = {"name": name, "kvm": 0, "memory": 128}
    values.update(props)
    lines = []
    index = 0
    for key, value in values.items():
        value = str(value)
        if value.startswith("@"):
            spec, _, rest = value.partition(",")
            value = create_volume(node, vmid, index, spec) + ("," + rest if rest else "")
            index += 1
        lines.append(f"{key}: {value}")
    path = node.root / f"etc/pve/qemu-server/{vmid}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("name, props, expected", case_params())
def test_upstream_qemu_starts(qm_node, name, props, expected):
    node = qm_node
    vmid = 500 + [case[0] for case in CASES].index(name)
    write_config(node, vmid, name, props)

    line = node.qm("showcmd", vmid).stdout
    for text in expected:
        if text.startswith("!"):
            assert text[1:] not in line, f"{text[1:]!r} unexpected in: {line}"
        else:
            assert text in line, f"{text!r} missing from: {line}"
    # Options that only Proxmox builds of QEMU accept.
    assert " -id " not in line
    assert "+pve" not in line
    assert "bootsplash" not in line

    upid = node.vms(vmid).status.start.post()
    status = node.wait_task(upid)
    log = node.task_log(upid)
    warnings = WARNINGS.get(name, [])
    if warnings:
        assert status["exitstatus"] == f"WARNINGS: {len(warnings)}", \
            f"start failed:\n{log}\ncommand line: {line}"
        for warning in warnings:
            assert warning in log
    else:
        assert status["exitstatus"] == "OK", f"start failed:\n{log}\ncommand line: {line}"
    current = node.status(vmid)
    assert current["status"] == "running", log
    assert current["qmpstatus"] == "running", log

    node.run_task(node.vms(vmid).status.stop.post())
    assert node.status(vmid)["status"] == "stopped"
