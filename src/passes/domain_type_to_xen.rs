//! `domain-type-to-xen`: the domain becomes a Xen domain. libvirt's libxl
//! driver rejects `type='kvm'` ("could not find capabilities for …
//! domaintype=kvm"), and a KVM `<emulator>` makes the start fail, so libxl
//! must pick its own device model. Xen on Arm guests have another shape, so
//! only x86 guests are converted.
//!
//! `<domain type='kvm'>…<emulator>/usr/libexec/qemu-kvm</emulator>` → `<domain type='xen'>…`

use super::{Cx, Pass};

pub const PASS: Pass =
    Pass { name: "domain-type-to-xen", summary: "set type='xen', drop the KVM <emulator>, refuse non-x86 guests", run };

fn run(cx: &mut Cx) {
    let Some(domain) = cx.domain() else { return };
    match cx.doc().attr(domain, "type") {
        Some("xen") => {}
        Some("kvm" | "qemu") => {
            cx.set_attr(domain, "type", "xen", "libvirt's libxl driver runs only Xen domains");
        }
        other => {
            let other = other.unwrap_or("(none)").to_string();
            cx.refuse(
                cx.doc().attr_path(domain, "type"),
                format!("domain type '{other}' is not a KVM domain xenify knows how to convert"),
            );
        }
    }
    if let Some(arch) = cx.doc().find(domain, &["os", "type"]).and_then(|t| cx.doc().attr(t, "arch")) {
        if !matches!(arch, "x86_64" | "i686") {
            let message = format!("architecture '{arch}': xenify converts x86 guests (x86_64, i686) only");
            let path = cx.doc().attr_path(cx.doc().find(domain, &["os", "type"]).unwrap_or(domain), "arch");
            cx.refuse(path, message);
        }
    }
    for emulator in cx.devices_named("emulator") {
        let path = cx.doc().text(emulator).unwrap_or("").trim().to_string();
        cx.remove(emulator, format!("<emulator>{path}</emulator>: libxl chooses its own device model"));
    }
}
