//! `devices-to-xen`: the rest of `<devices>`. libxl builds no controllers
//! but Xen's own (USB controllers of KVM models are rejected, even
//! `model='none'`), emulates USB tablets and mice and PS/2 inputs only,
//! rejects some sound models, ignores a list of devices the administrator
//! must hear about, and assigns PCI devices through pciback, not vfio.
//!
//! `<controller type='usb' model='piix3-uhci'/>`, `<watchdog model='i6300esb' action='reset'/>` → (removed)

use super::slots::is_cdrom;
use super::{Cx, Pass, Point};
use crate::doc::El;
use crate::policy::Loss;

pub const PASS: Pass = Pass {
    name: "devices-to-xen",
    summary: "controllers and ignored devices (rng, watchdog, …) kept only if the engine tracks them, USB keyboards dropped, sound models; vTPM only as accepted loss tpm",
    run,
};

/// Devices other passes handle.
const ELSEWHERE: &[&str] =
    &["disk", "interface", "graphics", "video", "memballoon", "channel", "console", "serial", "memory", "emulator"];

/// What libxl attaches to a running guest (libxl_driver.c): disks, NICs,
/// PCI and USB host devices and USB controllers.
const ATTACHABLE: &[&str] = &["disk", "interface", "hostdev", "controller", "memory"];

fn run(cx: &mut Cx) {
    if cx.live() {
        let root = cx.doc().root();
        let name = cx.doc().local(root).to_string();
        let update = cx.point == Point::Update;
        let cdrom = name == "disk" && is_cdrom(cx.doc(), root);
        if update && !cdrom {
            cx.refuse(
                cx.doc().path(root),
                format!("libxl changes only CD-ROM media in a running guest, not a <{name}> (a NIC's link, network or filter); stop the VM to change it"),
            );
            return;
        }
        if !ATTACHABLE.contains(&name.as_str()) {
            cx.refuse(cx.doc().path(root), format!("libxl cannot hot-plug a <{name}> into a running guest"));
            return;
        }
    }
    for dev in cx.devices() {
        if cx.doc().namespace(dev).is_some() {
            continue;
        }
        let name = cx.doc().qname(dev).to_string();
        match name.as_str() {
            n if ELSEWHERE.contains(&n) => {}
            "controller" => controller(cx, dev),
            "input" => input(cx, dev),
            "sound" => sound(cx, dev),
            "hostdev" => hostdev(cx, dev),
            "tpm" => cx.remove_accepted(
                dev,
                Loss::Tpm,
                "virtual TPM cannot be provided by Xen (libxl ignores <tpm>)",
                "<tpm>: libxl ignores it",
                "keys sealed to the vTPM (BitLocker, LUKS with TPM) stop working",
            ),
            "lease" => cx.warn(
                cx.doc().path(dev),
                "the storage lease is enforced only when lock_manager is set in libvirt's libxl.conf (sanlock); otherwise two hosts can run this VM at once",
            ),
            "parallel" => cx.remove_warn(dev, "<parallel>: libxl rejects parallel ports on HVM", "the guest has no parallel port"),
            _ => match ignored(&name, cx.doc().attr(dev, "action")) {
                Some(consequence) if cx.keep_tracked(dev, Some(&consequence)) => {}
                Some(consequence) => cx.remove_warn(dev, format!("<{name}>: libxl ignores it"), consequence),
                None => cx.warn(cx.doc().path(dev), format!("<{name}> is unknown to xenify and kept as it is; check that libxl supports it")),
            },
        }
    }
    audio_references(cx);
}

/// A sound card or a VNC console names its audio backend (`<sound><audio
/// id='2'/>`), and libvirt rejects a reference to a backend that is not
/// there ("no audio device with ID 2"): once the ignored `<audio>` backends
/// are gone, they use libxl's default backend.
fn audio_references(cx: &mut Cx) {
    let doc = cx.doc();
    let ids: Vec<String> =
        cx.devices_named("audio").into_iter().filter_map(|a| doc.attr(a, "id").map(str::to_string)).collect();
    let dangling: Vec<El> = cx
        .devices()
        .into_iter()
        .filter(|d| !doc.is(*d, "audio"))
        .flat_map(|d| doc.children_named(d, "audio").collect::<Vec<_>>())
        .filter(|r| !doc.attr(*r, "id").is_some_and(|id| ids.iter().any(|i| i == id)))
        .collect();
    for r in dangling {
        let id = cx.doc().attr(r, "id").unwrap_or("").to_string();
        cx.remove(r, format!("the reference to audio backend {id}, which is gone: libvirt rejects a reference to a missing backend; the device uses libxl's default"));
    }
}

/// What the guest loses with a device libxl ignores.
fn ignored(name: &str, action: Option<&str>) -> Option<String> {
    Some(match name {
        "rng" => "the guest has no virtio RNG; it seeds its entropy pool from its own sources".into(),
        "watchdog" => format!(
            "oVirt's watchdog action ('{}') is gone: a hung guest is not detected or acted on",
            action.unwrap_or("reset")
        ),
        "panic" => "guest panics are no longer reported to the host".into(),
        "smartcard" => "the guest has no smartcard passthrough".into(),
        "redirdev" | "redirfilter" => "USB redirection from the console client is not available".into(),
        "shmem" => "the shared memory region is not attached".into(),
        "filesystem" => "the shared host directory (virtiofs/9p) is not mounted in the guest".into(),
        "vsock" => "the guest has no vsock; agents using it cannot connect".into(),
        "iommu" => "the guest has no virtual IOMMU".into(),
        "hub" => "the guest has no USB hub".into(),
        "audio" => "the audio backend setting is not applied".into(),
        "crypto" => "the guest has no virtio crypto device".into(),
        "pstore" => "the guest has no pstore device to keep crash logs".into(),
        "nvram" => "the guest has no NVRAM device".into(),
        _ => return None,
    })
}

/// libxl builds Xen's own controllers and ignores the others, so they go,
/// unless the engine tracks them by alias; a tracked KVM USB controller
/// (rejected by libvirt) becomes the USB controller Xen has, qusb2.
fn controller(cx: &mut Cx, c: El) {
    let ty = cx.doc().attr(c, "type").unwrap_or("").to_string();
    let model = cx.doc().attr(c, "model").unwrap_or("").to_string();
    match ty.as_str() {
        "xenbus" => {}
        "usb" if model.starts_with("qusb") => {}
        "usb" if model == "none" => cx.remove(
            c,
            "USB controller model 'none': libvirt rejects it on Xen, which adds no USB controller unless one is needed",
        ),
        "usb" if cx.user_alias(c).is_some() => {
            cx.set_attr(
                c,
                "model",
                "qusb2",
                "libvirt rejects KVM USB models on Xen; a Xen PV USB controller (qusb2) takes its place, so Vdsm and the engine keep tracking it by its alias",
            );
            let ports = cx.doc().attr(c, "ports").and_then(|p| p.parse::<u32>().ok());
            if ports.is_some_and(|p| !(1..=31).contains(&p)) {
                cx.remove_attr(c, "ports", "is out of the range a Xen PV USB controller has (1-31)");
            }
            cx.keep_tracked(c, None);
            cx.warn(
                cx.doc().path(c),
                "the guest's USB controller is now a Xen PV USB controller, which only guests with a PV USB driver see; the emulated USB tablet works without it",
            );
        }
        "usb" => {
            let model = if model.is_empty() { "default".to_string() } else { model };
            cx.remove(
                c,
                format!("USB controller (model {model}): libvirt rejects KVM USB models on Xen; USB tablets need none"),
            );
        }
        "virtio-serial" => {}
        _ if cx.keep_tracked(c, None) => {}
        _ => cx.remove(c, format!("{ty} controller: libxl ignores controllers; Xen builds its own")),
    }
}

fn input(cx: &mut Cx, i: El) {
    let ty = cx.doc().attr(i, "type").unwrap_or("").to_string();
    let bus = cx.doc().attr(i, "bus").unwrap_or("").to_string();
    if cx.pvh() {
        match ty.as_str() {
            "mouse" | "keyboard" => {
                cx.set_attr(i, "bus", "xen", "a PVH guest has Xen PV inputs only");
            }
            _ => cx.remove(i, format!("{ty} input: a PVH guest has Xen PV mouse and keyboard only")),
        }
        return;
    }
    let kept = matches!((ty.as_str(), bus.as_str()), ("tablet" | "mouse", "usb") | ("mouse" | "keyboard", "ps2"));
    if !kept {
        let why = match (ty.as_str(), bus.as_str()) {
            (_, "virtio") => "virtio input: libxl ignores it".to_string(),
            ("keyboard", "usb") => "USB keyboard: libxl rejects it; the PS/2 keyboard remains".to_string(),
            _ => format!("{ty} input on bus '{bus}': libxl cannot emulate it on HVM"),
        };
        cx.remove(i, why);
    }
}

fn sound(cx: &mut Cx, s: El) {
    let model = cx.doc().attr(s, "model").unwrap_or("").to_string();
    match model.as_str() {
        "ich6" | "es1370" | "ac97" | "sb16" => {}
        "ich7" | "ich9" => {
            cx.set_attr(s, "model", "ich6", "Intel HDA as libxl offers it (libvirt rejects ich7 and ich9)");
        }
        _ => cx.remove_warn(
            s,
            format!("sound model '{model}': libvirt rejects it on Xen"),
            "the guest loses this sound card",
        ),
    }
}

fn hostdev(cx: &mut Cx, h: El) {
    let ty = cx.doc().attr(h, "type").unwrap_or("").to_string();
    if cx.doc().attr(h, "mode") == Some("capabilities") {
        cx.remove_warn(
            h,
            "hostdev in capabilities mode: libvirt rejects it on Xen",
            "the host device is not passed through",
        );
        return;
    }
    match ty.as_str() {
        "pci" => {
            if let Some(driver) = cx.doc().child(h, "driver") {
                if matches!(cx.doc().attr(driver, "name"), Some("vfio" | "kvm")) {
                    cx.set_attr(
                        driver,
                        "name",
                        "xen",
                        "Xen assigns PCI devices through pciback; libvirt rejects vfio on Xen",
                    );
                }
            }
            cx.remove_children(h, &["address", "rom"], "(guest side) is ignored by libxl");
        }
        "usb" => {}
        _ => cx.remove_warn(
            h,
            format!("{ty} host device: libxl passes through PCI and USB devices only"),
            "the host device is not passed through",
        ),
    }
}
