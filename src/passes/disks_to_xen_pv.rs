//! `disks-to-xen-pv`: virtio, SCSI, SATA and USB disks become Xen PV disks.
//! libxl accepts only `xvd*`, `hd[a-d]` and `sd[a-p]` names ("Invalid or
//! unsupported virtual disk identifier vda"); `xvda`-`xvdd` are also
//! emulated as IDE, so a disk never takes a CD-ROM's slot, and a read-only
//! disk sits at `xvde` or later (qemu-xen refuses read-only IDE disks).
//! Driver settings that libxl ignores go, and so do the virtio-only ones
//! that libvirt rejects once the bus is not virtio.
//!
//! `<target dev='vda' bus='virtio'/>` → `<target dev='xvda' bus='xen'/>`
//!
//! A lone disk (a hot-plug document) cannot see the names the running guest
//! uses. A converted domain names its disks from `xvda` on, one index per
//! disk and CD-ROM slot, so hot-plugged disks take the range from `xvdaa`
//! on (index 26 + the KVM index: `vdb` → `xvdab`), which no domain of fewer
//! than 24 disks reaches, and which is unique because Vdsm's KVM name is.

use std::collections::HashSet;

use super::slots::{self, cdrom_slots, is_cdrom, is_hard_disk, kept_slot};
use super::{Cx, Pass};
use crate::doc::El;

pub const PASS: Pass = Pass {
    name: "disks-to-xen-pv",
    summary: "virtio/SCSI/SATA/USB disks → xvdX on the Xen bus, qdisk driver, drop ignored and virtio-only settings",
    run,
};

/// The first index of the names given to hot-plugged disks (`xvdaa`).
const HOTPLUG_BASE: u32 = 26;

const IGNORED_DRIVER: &[&str] =
    &["cache", "io", "error_policy", "rerror_policy", "iothread", "copy_on_read", "detect_zeroes"];
const VIRTIO_ONLY_DRIVER: &[&str] =
    &["queues", "queue_size", "event_idx", "ioeventfd", "iommu", "ats", "packed", "page_per_vq"];
const IGNORED_CHILDREN: &[&str] = &["address", "serial", "wwn", "geometry", "blockio"];

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

fn check(cx: &mut Cx, disk: El) {
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
    if cx.doc().attr(source, "fdgroup").is_some() {
        cx.refuse(path, "disk source passed as file descriptors: libxl opens disks by path");
    } else if !["file", "dev", "name", "dir", "pool", "volume"]
        .iter()
        .any(|a| cx.doc().attr(source, a).is_some_and(|v| !v.is_empty()))
    {
        cx.refuse(path, "disk with an empty source: libxl cannot create a non-removable disk with no backing");
    }
}

/// Gives every disk that is not already a writable IDE disk or a Xen disk
/// an `xvd` name: boot disk first, then input order, skipping taken names
/// and the CD-ROM slots.
fn name_disks(cx: &mut Cx, disks: &[El], cdroms: &[El]) {
    let doc = cx.doc();
    let mut taken: HashSet<u32> = disks.iter().filter_map(|d| kept_slot(doc, *d)).collect();
    taken.extend(cdrom_slots(doc, disks, cdroms).into_iter().flatten());
    let mut order: Vec<El> = disks.iter().copied().filter(|d| kept_slot(doc, *d).is_none()).collect();
    let boot = |d: &El| {
        doc.child(*d, "boot").and_then(|b| doc.attr(b, "order")).and_then(|o| o.parse::<u32>().ok()).unwrap_or(u32::MAX)
    };
    if let Some(first) = disks.iter().min_by_key(|d| boot(d)).filter(|d| order.contains(d)) {
        order.retain(|d| d != first);
        order.insert(0, *first);
    }
    let lone = cx.domain().is_none();
    let mut next = [0u32, 4u32];
    for d in order {
        let Some(target) = cx.doc().child(d, "target") else {
            cx.refuse(cx.doc().path(d), "disk without a <target>: it has no name to give the guest");
            continue;
        };
        let old_dev = cx.doc().attr(target, "dev").unwrap_or("").to_string();
        let old_bus = cx.doc().attr(target, "bus").unwrap_or("").to_string();
        let readonly = cx.doc().child(d, "readonly").is_some();
        let index = if lone {
            HOTPLUG_BASE + slots::split(&old_dev).map_or(0, |(_, i)| i)
        } else {
            let cursor = &mut next[usize::from(readonly)];
            while taken.contains(cursor) {
                *cursor += 1;
            }
            *cursor
        };
        taken.insert(index);
        let dev = slots::xvd(index);
        let why = if lone {
            "a hot-plugged Xen PV disk, named in the range xenify keeps for hot-plugged disks (from xvdaa)"
        } else if readonly && index >= 4 {
            "Xen PV disk name; read-only disks sit at xvde or later (qemu-xen refuses read-only IDE disks)"
        } else {
            "libxl accepts only xvd/hd/sd names; xvda-xvdd are also emulated as IDE, so CD-ROM slots are skipped"
        };
        cx.set_attr(target, "dev", &dev, why);
        cx.set_attr(target, "bus", "xen", "Xen PV disk (blkfront), the bus libxl hot-plugs");
        if lone {
            cx.warn(
                cx.doc().path(d),
                format!("hot-plugged disk named {dev} from {old_dev}: the running guest's disk names are not in the document; assumed it started with fewer than 24 disks, all named by xenify"),
            );
        }
        if old_bus == "usb" {
            cx.remove_attr(target, "removable", "applies to USB disks only");
        }
        cx.remove_attr(target, "rotation_rate", "applies to IDE, SCSI and SATA disks only");
    }
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
