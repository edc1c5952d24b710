//! `os-to-xen`: the boot firmware and machine of a Xen guest. libvirt ignores
//! KVM machine types (Xen has no Q35), libxl boots HVM guests through
//! hvmloader, Xen's OVMF build is a single image (KVM's split `OVMF_CODE`
//! is not), secure boot is rejected, and UEFI variables are not kept.
//!
//! `<type machine='pc-q35-rhel8.6.0'>hvm</type>` → `<type machine='xenfv'>hvm</type>`

use super::{Cx, Pass};
use crate::doc::{At, El, NewEl};
use crate::policy::Loss;

pub const PASS: Pass = Pass {
    name: "os-to-xen",
    summary: "machine='xenfv' (or PVH), Xen's OVMF for UEFI, drop ROM loaders, nvram, smbios, bootmenu",
    run,
};

fn run(cx: &mut Cx) {
    // Every copy of <os>: libvirt reads them as one (`./os/loader[1]` is
    // the first loader of any of them).
    let copies = cx.all("os");
    let has_kernel = copies.iter().any(|os| cx.doc().child(*os, "kernel").is_some());
    for (i, os) in copies.into_iter().enumerate() {
        convert(cx, os, i == 0 && !has_kernel);
    }
}

/// One `<os>`; `needs_kernel` when it is the one a PVH kernel goes into.
fn convert(cx: &mut Cx, os: El, needs_kernel: bool) {
    if let Some(ty) = cx.doc().child(os, "type") {
        let os_type = cx.doc().text(ty).unwrap_or("").trim().to_string();
        if cx.pvh() {
            to_pvh(cx, os, ty, &os_type, needs_kernel);
        } else if os_type == "hvm" {
            cx.set_attr(
                ty,
                "machine",
                "xenfv",
                "Xen HVM guests run on qemu's xenfv machine; KVM machine types are ignored",
            );
        }
    }
    firmware(cx, os);
    for name in ["smbios", "bootmenu", "bios"] {
        for e in cx.doc().children_named(os, name).collect::<Vec<_>>() {
            let why = match name {
                "smbios" => "<smbios>: libxl ignores it, so the guest no longer sees the SMBIOS data of <sysinfo>",
                "bootmenu" => "<bootmenu>: libxl ignores it",
                _ => "<bios>: libxl ignores it",
            };
            cx.remove(e, why);
        }
    }
}

fn to_pvh(cx: &mut Cx, os: El, ty: El, os_type: &str, needs_kernel: bool) {
    if os_type != "xenpvh" {
        cx.set_text(ty, "xenpvh", "the policy asks for a PVH guest");
    }
    cx.set_attr(ty, "machine", "xenpvh", "PVH guests use the xenpvh machine");
    if !needs_kernel {
        return;
    }
    match cx.policy.pvh_kernel.clone() {
        Some(kernel) => {
            cx.add(os, At::After(ty), NewEl::new("kernel").text(&kernel), "from the policy's pvh_kernel: a PVH guest boots a kernel directly");
        }
        None => cx.refuse(
            cx.doc().path(os),
            "a PVH guest needs a kernel to boot and the domain has none; set pvh_kernel in the policy (for example a grub PVH image)",
        ),
    }
}

fn firmware(cx: &mut Cx, os: El) {
    for name in ["loader", "nvram", "firmware"] {
        cx.drop_duplicates(os, name);
    }
    let doc = cx.doc();
    let loader = doc.child(os, "loader");
    let efi_attr = doc.attr(os, "firmware") == Some("efi");
    let pflash = loader.is_some_and(|l| doc.attr(l, "type") == Some("pflash"));
    let firmware_el = doc.child(os, "firmware");
    let secure_feature = firmware_el.and_then(|f| {
        doc.children_named(f, "feature")
            .find(|x| doc.attr(*x, "name") == Some("secure-boot") && doc.attr(*x, "enabled") == Some("yes"))
    });
    let secure_loader = loader.filter(|l| doc.attr(*l, "secure") == Some("yes"));

    if cx.pvh() {
        if let Some(l) = loader {
            cx.remove(l, "<loader>: a PVH guest boots its kernel without firmware");
        }
        if let Some(n) = cx.doc().child(os, "nvram") {
            cx.remove(n, "<nvram>: a PVH guest has no firmware variables");
        }
        return;
    }
    if !(efi_attr || pflash) {
        if let Some(l) = loader {
            let path = cx.doc().text(l).unwrap_or("").trim().to_string();
            cx.remove(l, format!("<loader>{path}</loader>: libxl boots HVM guests with its own hvmloader and SeaBIOS"));
        }
        return;
    }

    // UEFI: one explicit Xen OVMF loader, secure boot only as an accepted loss.
    let secure_path = match (secure_loader, secure_feature) {
        (Some(l), _) => Some(cx.doc().attr_path(l, "secure")),
        (None, Some(f)) => Some(cx.doc().path(f)),
        _ => None,
    };
    let mut secure_ok = true;
    if let Some(path) = &secure_path {
        secure_ok = cx.loss(
            path.clone(),
            Loss::SecureBoot,
            "UEFI secure boot cannot be enforced by Xen (libvirt rejects it: \"Secure boot is not supported on Xen\")",
        );
    }
    let ovmf = cx.policy.ovmf_path.clone();
    let why_path = "Xen's OVMF build (policy ovmf_path); KVM's split OVMF_CODE images are not Xen builds";
    match loader {
        Some(l) => {
            cx.set_attr(l, "type", "pflash", "UEFI firmware is loaded as pflash");
            cx.set_attr(l, "readonly", "yes", "the firmware image is shared and read-only");
            if secure_loader.is_some() && secure_ok {
                cx.set_attr(l, "secure", "no", "libvirt rejects secure boot on Xen");
            }
            if cx.doc().text(l).map(str::trim) != Some(ovmf.as_str()) {
                cx.set_text(l, &ovmf, why_path);
            }
        }
        None => {
            let at = match cx.doc().child(os, "type") {
                Some(t) => At::After(t),
                None => At::First,
            };
            let mut new = NewEl::new("loader").attr("readonly", "yes").attr("type", "pflash");
            if secure_feature.is_some() && secure_ok {
                new = new.attr("secure", "no");
            }
            cx.add(os, at, new.text(&ovmf), why_path);
        }
    }
    if efi_attr {
        cx.remove_attr(os, "firmware", "is replaced by an explicit Xen OVMF <loader>");
    }
    if let (Some(path), true) = (secure_path, secure_ok) {
        cx.accepted(path, Loss::SecureBoot, "secure boot is switched off: the guest boots unsigned code");
    }
    if let Some(f) = firmware_el {
        if secure_feature.is_none() || secure_ok {
            cx.remove(f, "<firmware> feature list: the explicit Xen OVMF <loader> replaces firmware autoselection");
        }
    }
    if let Some(n) = cx.doc().child(os, "nvram") {
        cx.remove_warn(
            n,
            "<nvram>: libxl cannot keep UEFI variables",
            "UEFI variables (boot entries, settings) are not kept between boots on Xen",
        );
    }
}
