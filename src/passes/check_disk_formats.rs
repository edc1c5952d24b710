//! `check-disk-formats`: disk image formats libxl can open. qemu-xen's
//! qdisk backend (`<driver name='qemu'>`) opens raw, qcow, qcow2 and qed;
//! VHD too, but libvirt's xl.cfg export of such a VM writes the format as
//! `xvhd`, which Xen's xl rejects, so VHD images are refused with the way
//! out; `phy` and `file` open raw only; anything else is rejected
//! ("libxenlight does not support disk format …"). Hosts without the qdisk
//! backend refuse qcow2 by policy (`qcow2 = "reject"`).
//!
//! `<driver name='qemu' type='vmdk'/>` → refused, naming the disk

use super::slots::{device_kind, is_cdrom, target_dev};
use super::{Cx, Pass};
use crate::policy::Qcow2;

pub const PASS: Pass = Pass {
    name: "check-disk-formats",
    summary: "refuse image formats libxl cannot open, VHD, and qcow2 when the policy says reject",
    run,
};

fn run(cx: &mut Cx) {
    for disk in cx.devices_named("disk") {
        if device_kind(cx.doc(), disk) == "floppy" {
            continue;
        }
        let Some(driver) = cx.doc().child(disk, "driver") else {
            continue;
        };
        let doc = cx.doc();
        let format = doc.attr(driver, "type").unwrap_or("raw").to_string();
        let name = doc.attr(driver, "name").unwrap_or("qemu").to_string();
        let qdisk = matches!(name.as_str(), "qemu" | "tap" | "tap2");
        if format == "iso" && is_cdrom(doc, disk) {
            cx.set_attr(driver, "type", "raw", "an ISO image is a raw image, the format libxl knows it by");
            continue;
        }
        let opens = if qdisk { matches!(format.as_str(), "raw" | "qcow" | "qcow2" | "qed") } else { format == "raw" };
        let reject_qcow2 = format == "qcow2" && cx.policy.qcow2 == Qcow2::Reject;
        if opens && !reject_qcow2 {
            continue;
        }
        let target = target_dev(doc, disk).unwrap_or("?");
        let source = doc
            .child(disk, "source")
            .and_then(|s| ["file", "dev", "name", "dir"].iter().find_map(|a| doc.attr(s, a)))
            .unwrap_or("(no source)");
        let message = if matches!(format.as_str(), "vpc" | "vhd") {
            format!("disk {target} ({source}) is a VHD image: libvirt's libxl driver names the format 'vhd' (qemu's 'vpc'), and its xl.cfg export of the VM then writes 'xvhd', which Xen's xl rejects; convert it with qemu-img convert -O raw")
        } else if !opens {
            format!("disk {target} ({source}) is in format '{format}', which libxl cannot open with driver '{name}'; convert it with qemu-img convert -O raw")
        } else {
            format!("disk {target} ({source}) is qcow2 and the policy says qcow2 = \"reject\"; convert it with qemu-img convert -O raw, or set qcow2 = \"qdisk\" on hosts with qemu-xen's qdisk backend")
        };
        cx.refuse(doc.attr_path(driver, "type"), message);
    }
}
