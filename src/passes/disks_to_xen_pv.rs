//! `disks-to-xen-pv`: virtio, SCSI, SATA and USB disks become disks libxl
//! can run and Vdsm can still track. libxl accepts only `xvd*`, `hd[a-d]`
//! and `sd[a-p]` names ("Invalid or unsupported virtual disk identifier
//! vda"); Vdsm parses only `hd`, `sd`, `vd` and `fd` names when it rebuilds a
//! VM from libvirt's XML, and reads an `<address>` from every disk. So disks
//! get the twenty names both accept, on the bus libvirt gives them a drive
//! address on:
//!
//! - the boot disk first, then the other writable disks in input order, take
//!   the IDE slots `hda`-`hdd` that the CD-ROMs leave (with a CD-ROM at
//!   `hdc`: `hda`, `hdb`, `hdd`), on `bus='ide'`: a guest without Xen PV
//!   drivers (Windows fresh from KVM) sees and boots only emulated IDE disks,
//!   and UEFI firmware boots no LSI SCSI disk;
//! - the rest, every read-only disk (qemu-xen refuses read-only IDE disks)
//!   and every LUN go on `bus='scsi'`: Xen PV disks for guests with PV
//!   drivers, emulated on an LSI SCSI controller otherwise. A disk already
//!   at a free `sda`-`sdp` name keeps it; the others are named from `sdp`
//!   down, away from the low names the engine gives disks it hot-plugs;
//! - past twenty disks and CD-ROMs nothing is left that both readers accept,
//!   and the VM is refused: an `xvd` name would start, but Vdsm would rebuild
//!   none of the VM's disks after a restart (no snapshots, no live merge, no
//!   thin-disk extension).
//!
//! A renamed disk loses its KVM `<address>`; libvirt assigns the drive
//! address of the new name, which Vdsm reads. Driver settings that libxl
//! ignores go, and so do the virtio-only ones that libvirt rejects once the
//! bus is not virtio.
//!
//! `<target dev='vda' bus='virtio'/>` → `<target dev='hda' bus='ide'/>`
//!
//! A lone disk (a hot-plug document) cannot see the names the running guest
//! uses, and libxl hot-plugs only disks on the Xen bus, where libvirt assigns
//! no address, so the drive address Vdsm reads is written out. A VirtIO-SCSI
//! or SATA disk keeps the engine's `sdX` name, under which Vdsm saved its
//! metadata; a virtio disk `vdX` becomes `sd` of index 8 + X (`vdb` →
//! `sdj`), between those low names and the top ones a domain's own disks
//! get, so it meets neither unless the VM has many disks (the warning says
//! what is assumed).

use std::collections::HashSet;

use super::slots::{self, cdrom_slots, is_cdrom, is_hard_disk, is_readonly, keeps_name, kept_ide_slot};
use super::{Cx, Pass};
use crate::doc::{At, Document, El, NewEl};
use crate::policy::Loss;

pub const PASS: Pass = Pass {
    name: "disks-to-xen-pv",
    summary: "disks → names libxl and Vdsm both accept (hda-hdd, then sdp down), qdisk driver, drop ignored and virtio-only settings; LUNs only as accepted loss scsi-passthrough",
    run,
};

const IGNORED_DRIVER: &[&str] =
    &["cache", "io", "error_policy", "rerror_policy", "iothread", "copy_on_read", "detect_zeroes"];
const VIRTIO_ONLY_DRIVER: &[&str] =
    &["queues", "queue_size", "event_idx", "ioeventfd", "iommu", "ats", "packed", "page_per_vq"];
const IGNORED_CHILDREN: &[&str] = &["serial", "wwn", "geometry", "blockio"];

fn run(cx: &mut Cx) {
    let all = cx.devices_named("disk");
    let disks: Vec<El> = all.iter().copied().filter(|d| is_hard_disk(cx.doc(), *d)).collect();
    let cdroms: Vec<El> = all.iter().copied().filter(|d| is_cdrom(cx.doc(), *d)).collect();
    for &d in &disks {
        check(cx, d);
    }
    name_disks(cx, &disks, &cdroms);
    for &d in &disks {
        clean(cx, d);
        cx.keep_alias(d);
    }
    if cx.live() {
        // A hot-plugged disk must be a Xen PV disk ("disk bus … cannot be hotplugged").
        for &d in &disks {
            let bus = slots::bus(cx.doc(), d).unwrap_or("").to_string();
            if bus != "xen" {
                cx.refuse(
                    cx.doc().path(d),
                    format!("libxl hot-plugs Xen PV disks only, not a disk on bus '{bus}'; hot-plug it as a virtio disk, which becomes a Xen PV disk"),
                );
            }
        }
    }
}

/// A LUN (`device='lun'`) is passed through on KVM: the guest sends SCSI
/// commands, persistent reservations included, to the device. libxl makes
/// it a plain disk, so that goes only as the accepted loss
/// `scsi-passthrough`; libvirt then rejects `sgio='unfiltered'` and
/// ignores the rest of the passthrough settings.
fn lun(cx: &mut Cx, disk: El) {
    if slots::device_kind(cx.doc(), disk) != "lun" {
        return;
    }
    let path = cx.doc().path(disk);
    if !cx.loss(
        path.clone(),
        Loss::ScsiPassthrough,
        "SCSI passthrough of a LUN (device='lun') cannot be provided by Xen: libxl attaches it as a plain disk",
    ) {
        return;
    }
    cx.remove_attrs(disk, &["sgio", "rawio"], "is a SCSI passthrough setting, which libxl does not have");
    if let Some(source) = cx.doc().child(disk, "source") {
        cx.remove_children(
            source,
            &["reservations"],
            "(persistent reservations) is a SCSI passthrough setting, which libxl does not have",
        );
    }
    cx.accepted(
        path,
        Loss::ScsiPassthrough,
        "the LUN is a plain disk: SCSI commands and persistent reservations no longer reach the device",
    );
}

fn check(cx: &mut Cx, disk: El) {
    lun(cx, disk);
    let doc = cx.doc();
    let path = doc.path(disk);
    let ty = doc.attr(disk, "type").unwrap_or("file").to_string();
    let source = doc.child(disk, "source");
    if let Some(t) = doc.child(disk, "transient") {
        cx.refuse(cx.doc().path(t), "<transient/> disk: libvirt's libxl driver rejects transient disks");
    }
    match ty.as_str() {
        "network" => {
            let protocol = source.and_then(|s| cx.doc().attr(s, "protocol")).unwrap_or("(none)").to_string();
            let secret = cx
                .doc()
                .find(disk, &["auth", "secret"])
                .or_else(|| source.and_then(|s| cx.doc().find(s, &["auth", "secret"])));
            if let (true, Some(secret)) = (protocol == "rbd", secret) {
                let uuid = cx.doc().attr(secret, "uuid").or(cx.doc().attr(secret, "usage")).unwrap_or("?").to_string();
                cx.warn(
                    cx.doc().path(secret),
                    format!("libxl looks the Ceph secret {uuid} up through xen:///system: define it in libvirt's secret store on the Xen host"),
                );
            }
            if protocol != "rbd" {
                cx.refuse(
                    path.clone(),
                    format!("network disk with protocol '{protocol}': libxl opens only rbd network disks; attach the image as a file or block device on the host"),
                );
            }
            let hosts: Vec<El> = source.map(|s| cx.doc().children_named(s, "host").collect()).unwrap_or_default();
            for h in hosts {
                if cx.doc().attr(h, "name").is_some_and(|n| n.contains(':')) {
                    cx.warn(
                        cx.doc().attr_path(h, "name"),
                        "a Ceph monitor by IPv6 address: libxl gets it, but the xl.cfg that `virsh domxml-to-native xen-xl` writes for this VM escapes it in a way xl cannot read; a monitor name avoids that",
                    );
                }
            }
        }
        "vhostuser" | "nvme" | "volume" => {
            cx.refuse(path, format!("disk type '{ty}': libxl cannot open it; give the disk as a file or block device"));
            return;
        }
        _ => {}
    }
    let Some(source) = source else {
        cx.refuse(path, "disk without a source: libxl cannot create a non-removable disk with no backing");
        return;
    };
    // libxl hands the image to the backend as it is: an encrypted one
    // would reach the guest as ciphertext.
    if let Some(enc) = cx.doc().child(source, "encryption").or_else(|| cx.doc().child(disk, "encryption")) {
        let format = cx.doc().attr(enc, "format").unwrap_or("?").to_string();
        cx.refuse(
            cx.doc().path(enc),
            format!("disk image encrypted by qemu ({format}): libxl does not decrypt it, so the guest would read ciphertext; decrypt it on the host (qemu-img convert) or encrypt inside the guest"),
        );
    }
    if ty == "network" {
        return;
    }
    if cx.doc().attr(source, "fdgroup").is_some() {
        cx.refuse(path, "disk source passed as file descriptors: libxl opens disks by path");
    } else if !["file", "dev", "name", "dir", "pool", "volume"]
        .iter()
        .any(|a| cx.doc().attr(source, a).is_some_and(|v| !v.is_empty()))
    {
        cx.refuse(path, "disk with an empty source: libxl cannot create a non-removable disk with no backing");
    }
}

/// Names every disk that does not keep its name (the module comment has
/// the scheme): the boot disk first, then input order.
fn name_disks(cx: &mut Cx, disks: &[El], cdroms: &[El]) {
    let doc = cx.doc();
    let mut order: Vec<El> = disks.iter().copied().filter(|d| !keeps_name(doc, *d)).collect();
    let boot = |d: &El| {
        doc.child(*d, "boot").and_then(|b| doc.attr(b, "order")).and_then(|o| o.parse::<u32>().ok()).unwrap_or(u32::MAX)
    };
    if let Some(first) = disks.iter().min_by_key(|d| boot(d)).filter(|d| order.contains(d)) {
        order.retain(|d| d != first);
        order.insert(0, *first);
    }
    if cx.domain().is_none() {
        for d in order {
            hotplug_name(cx, d);
        }
        return;
    }
    let mut ide: HashSet<u32> = disks.iter().filter_map(|d| kept_ide_slot(doc, *d)).collect();
    ide.extend(cdrom_slots(doc, disks, cdroms).into_iter().flatten());
    // Writable disks take the free IDE slots; the others, SCSI names.
    let mut on_scsi = Vec::new();
    for d in order {
        let ide_ok = !is_readonly(cx.doc(), d) && slots::device_kind(cx.doc(), d) == "disk";
        match (0..slots::IDE_SLOTS).find(|s| ide_ok && !ide.contains(s)) {
            Some(slot) => {
                ide.insert(slot);
                rename(cx, d, &slots::hd(slot), "ide", "a name both libxl and Vdsm accept; hda-hdd are emulated as IDE, which every guest can boot and drive without Xen PV drivers");
            }
            None => on_scsi.push(d),
        }
    }
    // A disk already at a free SCSI name keeps it; the others are named from
    // sdp down, away from the low names the engine gives hot-plugged
    // VirtIO-SCSI disks, which keep theirs.
    let mut scsi: HashSet<u32> = HashSet::new();
    let mut unnamed = Vec::new();
    for d in on_scsi {
        match scsi_index(cx.doc(), d).filter(|i| !scsi.contains(i)) {
            Some(i) => {
                scsi.insert(i);
                let dev = slots::sd(i);
                rename(cx, d, &dev, "scsi", "");
            }
            None => unnamed.push(d),
        }
    }
    for d in unnamed {
        let Some(i) = (0..slots::SCSI_NAMES).rev().find(|i| !scsi.contains(i)) else {
            let old = slots::target_dev(cx.doc(), d).unwrap_or("").to_string();
            cx.refuse(
                cx.doc().path(d),
                format!("disk {old}: no name is left that both libxl (xvd*, hd[a-d], sd[a-p]) and Vdsm (hd, sd, vd, fd) accept; on Xen under Vdsm a VM has at most 20 disks and CD-ROMs together, read-only disks at most 16; detach a disk"),
            );
            continue;
        };
        scsi.insert(i);
        let why = if is_readonly(cx.doc(), d) || slots::device_kind(cx.doc(), d) != "disk" {
            "a name both libxl and Vdsm accept; read-only disks and LUNs cannot be emulated IDE, so it is a Xen PV disk emulated on LSI SCSI"
        } else {
            "a name both libxl and Vdsm accept; the IDE slots are taken, so it is a Xen PV disk emulated on LSI SCSI (a guest without Xen PV drivers may not see it)"
        };
        rename(cx, d, &slots::sd(i), "scsi", why);
    }
}

/// The index of a disk already named `sda`-`sdp`.
fn scsi_index(doc: &Document, d: El) -> Option<u32> {
    let (prefix, index) = slots::split(slots::target_dev(doc, d)?)?;
    (prefix == "sd" && index < slots::SCSI_NAMES).then_some(index)
}

/// Gives disk `d` the name `dev` on `bus` (`why` says why the name). A
/// renamed disk loses its KVM address: libvirt assigns the one of the new
/// name.
fn rename(cx: &mut Cx, d: El, dev: &str, bus: &str, why: &str) {
    let Some(target) = cx.doc().child(d, "target") else {
        cx.refuse(cx.doc().path(d), "disk without a <target>: it has no name to give the guest");
        return;
    };
    let old_dev = cx.doc().attr(target, "dev").unwrap_or("").to_string();
    let old_bus = cx.doc().attr(target, "bus").unwrap_or("").to_string();
    cx.set_attr(target, "dev", dev, why);
    let bus_why = if bus == "xen" {
        "Xen PV disk (blkfront), the only bus libxl hot-plugs"
    } else {
        "the bus of that name, on which libvirt gives the disk the drive address Vdsm reads"
    };
    cx.set_attr(target, "bus", bus, bus_why);
    if old_bus == "usb" {
        cx.remove_attr(target, "removable", "applies to USB disks only");
    }
    if !matches!(bus, "ide" | "scsi" | "sata") {
        cx.remove_attr(target, "rotation_rate", "applies to IDE, SCSI and SATA disks only");
    }
    if bus == "xen" {
        return;
    }
    if old_dev != dev || old_bus != bus {
        for a in cx.doc().children_named(d, "address").collect::<Vec<_>>() {
            cx.remove(a, "<address> of the KVM name: libvirt assigns the drive address of the new name");
        }
    }
}

/// A hot-plugged disk: on the Xen bus, the only one libxl hot-plugs, with
/// the drive address of its name written out (libvirt assigns none on the
/// Xen bus, and Vdsm reads one). A VirtIO-SCSI or SATA disk keeps the
/// engine's `sdX` name, which Vdsm saved its metadata under; a virtio disk
/// `vdX` becomes `sd` of index 8 + X (`vdb` → `sdj`): between the engine's
/// low SCSI names and the top ones a domain's own disks are given.
fn hotplug_name(cx: &mut Cx, d: El) {
    let old_dev = slots::target_dev(cx.doc(), d).unwrap_or("").to_string();
    let index = match slots::split(&old_dev) {
        Some(("sd", i)) if i < slots::SCSI_NAMES => Some(i),
        Some(("vd", i)) if i < slots::SCSI_NAMES / 2 => Some(slots::SCSI_NAMES / 2 + i),
        Some(("sd" | "vd", _)) => None,
        // An IDE disk stays one and is refused below; others are unnamed.
        Some(("hd", _)) => return,
        _ => Some(slots::SCSI_NAMES / 2),
    };
    let Some(index) = index else {
        cx.refuse(
            cx.doc().path(d),
            format!("hot-plugged disk {old_dev}: the names xenify gives hot-plugged disks (sda-sdp for VirtIO-SCSI, sdi-sdp for virtio vda-vdh) do not reach it; detach a disk first"),
        );
        return;
    };
    let dev = slots::sd(index);
    let why = if dev == old_dev {
        "the engine's name, which Vdsm saved the disk's metadata under and libxl accepts"
    } else {
        "a name both libxl and Vdsm accept, in the range xenify keeps for hot-plugged virtio disks (sdi-sdp)"
    };
    rename(cx, d, &dev, "xen", why);
    let mut drive = false;
    for a in cx.doc().children_named(d, "address").collect::<Vec<_>>() {
        if cx.doc().attr(a, "type") == Some("drive") && !drive {
            drive = true;
        } else {
            cx.remove(a, "<address> of the KVM bus: Vdsm reads a drive address");
        }
    }
    if drive {
        warn_hotplug_name(cx, d, &dev);
        return;
    }
    let unit = index.to_string();
    let address = NewEl::new("address")
        .attr("type", "drive")
        .attr("controller", "0")
        .attr("bus", "0")
        .attr("target", "0")
        .attr("unit", &unit);
    cx.add(d, At::Last, address, "the drive address Vdsm reads from every disk; libvirt assigns none on the Xen bus");
    warn_hotplug_name(cx, d, &dev);
}

fn warn_hotplug_name(cx: &mut Cx, d: El, dev: &str) {
    cx.warn(
        cx.doc().path(d),
        format!("hot-plugged disk {dev}: the running VM's disk names are not in the document; assumed none is {dev} (xenify names a domain's disks hda-hdd, then from sdp down)"),
    );
}

fn clean(cx: &mut Cx, disk: El) {
    let ty = cx.doc().attr(disk, "type").unwrap_or("file").to_string();
    cx.remove_attr(disk, "model", "(virtio model): libvirt rejects disk models on the Xen bus");
    if let Some(driver) = cx.doc().child(disk, "driver") {
        let format = cx.doc().attr(driver, "type").unwrap_or("raw").to_string();
        let name = cx.doc().attr(driver, "name").unwrap_or("").to_string();
        let qdisk = ty == "network"
            || ty == "file"
            || format != "raw"
            || !matches!(name.as_str(), "qemu" | "phy" | "file" | "");
        if qdisk && !name.is_empty() && name != "qemu" {
            cx.set_attr(
                driver,
                "name",
                "qemu",
                "file, network and non-raw disks open through qemu-xen's qdisk backend",
            );
        }
        cx.remove_attrs(driver, IGNORED_DRIVER, "is ignored by libxl");
        cx.remove_attrs(driver, VIRTIO_ONLY_DRIVER, "is virtio-only: libvirt rejects it on the Xen bus");
    }
    cx.remove_children(disk, IGNORED_CHILDREN, "is ignored by libxl");
    // A PCI address is rejected on the IDE and SCSI buses; a drive address
    // of a disk that kept its name stays (libvirt would assign the same).
    for a in cx.doc().children_named(disk, "address").collect::<Vec<_>>() {
        if cx.doc().attr(a, "type") != Some("drive") {
            cx.remove(a, "<address> (KVM's PCI slot): ignored by libxl");
        }
    }
    for iotune in cx.doc().children_named(disk, "iotune").collect::<Vec<_>>() {
        cx.remove_warn(iotune, "<iotune>: libxl ignores disk I/O limits", "the disk's I/O is no longer limited");
    }
    // libxl ignores <shareable/>, and libvirt's xl export turns it into an
    // access mode xl rejects (`access=!`).
    for s in cx.doc().children_named(disk, "shareable").collect::<Vec<_>>() {
        cx.remove_warn(
            s,
            "<shareable/>: libxl ignores it",
            "Xen neither marks nor locks the disk as shared: several guests can still attach it, and the cluster software in them must coordinate",
        );
    }
}
