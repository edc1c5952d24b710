//! `features-to-xen`: CPU and platform features as libxl reads them. On
//! libxl an absent `<apic/>` means no APIC (on KVM it does not), KVM-only
//! features are ignored, Hyper-V enlightenments map to Xen's viridian groups
//! only in part, and `<ps2 state='off'>` is rejected for HVM.
//!
//! `<features><acpi/><kvm><hidden state='on'/></kvm></features>` → `<features><acpi/><apic/><pae/></features>`

use super::{Cx, Pass};
use crate::doc::{At, El, NewEl};

pub const PASS: Pass = Pass {
    name: "features-to-xen",
    summary: "write out <apic/> and <pae/>, drop KVM-only features and unsupported Hyper-V enlightenments",
    run,
};

/// Features libxl never reads.
const KVM_ONLY: &[&str] = &[
    "kvm",
    "vmport",
    "smm",
    "vmcoreinfo",
    "pvspinlock",
    "ioapic",
    "pmu",
    "htm",
    "msrs",
    "viridian",
    "tcg",
    "async-teardown",
    "hpt",
    "cfpc",
    "sbbc",
    "ibs",
    "ccf-assist",
    "nested-hv",
    "gic",
];

/// Hyper-V enlightenments libvirt (≥ 11.3) maps to Xen viridian groups.
const HYPERV_KEPT: &[&str] = &["relaxed", "vapic", "vpindex", "synic", "stimer", "frequencies", "tlbflush", "ipi"];

fn run(cx: &mut Cx) {
    let Some(domain) = cx.domain() else { return };
    let mut copies = cx.all("features");
    if copies.is_empty() && !cx.pvh() {
        let at = match cx.doc().child(domain, "os") {
            Some(os) => At::After(os),
            None => At::Last,
        };
        copies.push(cx.add(
            domain,
            at,
            NewEl::new("features"),
            "libxl switches off APIC and PAE unless they are written out",
        ));
    }
    if !cx.pvh() {
        for (name, why) in [
            ("apic", "on libxl an absent <apic/> means no APIC (KVM gives one regardless)"),
            ("pae", "written out, as libvirt's own Xen HVM domains have it"),
        ] {
            if !copies.iter().any(|f| cx.doc().child(*f, name).is_some()) {
                cx.add(copies[0], At::Last, NewEl::new(name), why);
            }
        }
    }
    // libvirt reads the children of every copy (`./features/*`).
    for features in copies {
        convert(cx, features);
    }
}

fn convert(cx: &mut Cx, features: El) {
    let kids: Vec<_> = cx.doc().children(features).collect();
    for f in kids {
        let name = cx.doc().qname(f).to_string();
        if KVM_ONLY.contains(&name.as_str()) {
            cx.remove(f, format!("<{name}>: KVM-only, libxl ignores it"));
        } else if name == "ps2" && cx.doc().attr(f, "state") == Some("off") {
            cx.remove(f, "<ps2 state='off'>: libvirt rejects it for HVM guests, which always have PS/2 inputs");
        } else if name == "hyperv" {
            let subs: Vec<_> = cx.doc().children(f).collect();
            for s in subs {
                let sub = cx.doc().qname(s).to_string();
                if !HYPERV_KEPT.contains(&sub.as_str()) {
                    cx.remove(
                        s,
                        format!("<{sub}>: Hyper-V enlightenment that Xen's viridian support does not provide"),
                    );
                }
            }
        }
    }
}
