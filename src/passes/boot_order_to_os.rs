//! `boot-order-to-os`: libxl reads only `<os><boot dev=…/>`; per-device
//! `<boot order='N'/>` is silently ignored and the guest boots from disk
//! only. The orders of the devices that remain become `<os>` boot entries
//! (libvirt rejects having both forms), and a disk is always among them, so
//! a CD-ROM never stops the guest from booting its disk.
//!
//! `<disk>…<boot order='2'/>`, `<disk device='cdrom'>…<boot order='1'/>` → `<os>…<boot dev='cdrom'/><boot dev='hd'/></os>`

use super::slots::{device_kind, has_media};
use super::{Cx, Pass};
use crate::doc::{At, El, NewEl};

pub const PASS: Pass = Pass {
    name: "boot-order-to-os",
    summary: "per-device <boot order> → <os><boot dev>, with the disk always bootable",
    run,
};

/// Elements of `<os>` that come before the boot entries.
const BEFORE_BOOT: &[&str] = &["type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline", "dtb"];

fn run(cx: &mut Cx) {
    let devices = cx.devices();
    let mut entries: Vec<(u32, Option<&'static str>, El, El)> = Vec::new();
    for d in &devices {
        cx.drop_duplicates_of(*d, "boot", " of a device");
        let Some(b) = cx.doc().child(*d, "boot") else {
            continue;
        };
        let order = cx.doc().attr(b, "order").and_then(|o| o.parse::<u32>().ok()).unwrap_or(u32::MAX);
        let class = match cx.doc().qname(*d) {
            "disk" => match device_kind(cx.doc(), *d) {
                "cdrom" => Some("cdrom"),
                "floppy" => Some("fd"),
                _ => Some("hd"),
            },
            "interface" => Some("network"),
            _ => None,
        };
        entries.push((order, class, b, *d));
    }
    let Some(domain) = cx.domain() else {
        // A hot-plugged device cannot change the boot order of a running guest.
        for (_, _, b, _) in entries {
            cx.remove(b, "per-device boot order: libxl ignores it, and the domain's <os> boot order is not in this device document");
        }
        return;
    };
    let Some(os) = cx.doc().child(domain, "os") else {
        return;
    };
    let has_disk =
        devices.iter().any(|d| cx.doc().is(*d, "disk") && matches!(device_kind(cx.doc(), *d), "disk" | "lun"));
    // libvirt reads the boot entries of every <os> (`./os/boot`).
    let os_boots: Vec<El> = cx.all("os").into_iter().flat_map(|o| cx.doc().children_named(o, "boot")).collect();
    if cx.pvh() {
        for (_, _, b, _) in entries {
            cx.remove(b, "per-device boot order: a PVH guest boots its kernel directly");
        }
        for b in os_boots {
            cx.remove(b, "<boot dev>: a PVH guest boots its kernel directly");
        }
        return;
    }
    if entries.is_empty() {
        default_order(cx, os, &devices, os_boots.is_empty());
        return;
    }
    entries.sort_by_key(|e| e.0);
    let mut devs: Vec<&str> = Vec::new();
    for (_, class, _, d) in &entries {
        match class {
            Some(c) if !devs.contains(c) => devs.push(c),
            Some(_) => {}
            None => {
                let name = cx.doc().qname(*d).to_string();
                cx.warn(
                    cx.doc().path(*d),
                    format!(
                        "booting from a {name} is not possible on Xen (libxl boots from disk, CD-ROM or network only)"
                    ),
                );
            }
        }
    }
    if has_disk && !devs.contains(&"hd") {
        devs.push("hd");
    }
    if devs.is_empty() {
        // Only devices libxl cannot boot from had an order: as if none had.
        for (_, _, b, _) in entries {
            cx.remove(b, "per-device boot order of a device libxl cannot boot from");
        }
        default_order(cx, os, &devices, os_boots.is_empty());
        return;
    }
    for b in os_boots {
        cx.remove(b, "<os><boot> replaced by the per-device boot order (libvirt rejects both forms)");
    }
    let summary = devs.join(", ");
    write_boot(cx, os, &devs, &format!("from the per-device boot order: libxl reads only <os><boot> ({summary})"));
    for (_, _, b, _) in entries {
        cx.remove(b, format!("per-device boot order: libxl ignores it; the order is now in <os> ({summary})"));
    }
}

/// Without a usable boot order: the disk, then a CD-ROM with media, as KVM
/// boots (unless `<os>` already orders booting or boots a kernel).
fn default_order(cx: &mut Cx, os: El, devices: &[El], unordered: bool) {
    if !unordered || cx.doc().child(os, "kernel").is_some() {
        return;
    }
    let media = devices
        .iter()
        .any(|d| cx.doc().is(*d, "disk") && device_kind(cx.doc(), *d) == "cdrom" && has_media(cx.doc(), *d));
    let (devs, why): (&[&str], _) = if media {
        (&["hd", "cdrom"], "no boot order was given: the disk, then the CD-ROM with media, as KVM boots")
    } else {
        (&["hd"], "no boot order was given: the disk, as KVM boots")
    };
    write_boot(cx, os, devs, why);
}

fn write_boot(cx: &mut Cx, os: El, devs: &[&str], why: &str) {
    let mut anchor = cx.doc().children(os).filter(|c| BEFORE_BOOT.iter().any(|n| cx.doc().is(*c, n))).last();
    for dev in devs {
        let at = anchor.map_or(At::First, At::After);
        anchor = Some(cx.add(os, at, NewEl::new("boot").attr("dev", dev), why));
    }
}
