//! `memory-to-xen`: memory. Xen has no memory hot-plug (libvirt rejects
//! `<maxMemory slots>` and DIMMs), less current than maximum memory switches
//! on populate-on-demand (fatal without a balloon driver, refused beside PCI
//! passthrough or vNUMA), and backing and tuning settings are ignored.
//!
//! `<maxMemory slots='16'>…</maxMemory><currentMemory>2097152</currentMemory>` → `<currentMemory>4194304</currentMemory>`

use super::values::to_kib;
use super::{Cx, Pass};

pub const PASS: Pass = Pass {
    name: "memory-to-xen",
    summary: "drop maxMemory and DIMMs, currentMemory = memory, drop memoryBacking/memtune/numatune",
    run,
};

fn run(cx: &mut Cx) {
    for dimm in cx.devices_named("memory") {
        let model = cx.doc().attr(dimm, "model").unwrap_or("").to_string();
        if cx.domain().is_none() {
            cx.refuse(cx.doc().path(dimm), format!("memory hot-plug ({model} device): Xen has no memory hot-plug"));
        } else if model == "dimm" {
            cx.remove(dimm, "memory DIMM: no memory hot-plug on Xen; <memory> already counts the DIMMs, so the guest keeps all its memory");
        } else {
            cx.refuse(
                cx.doc().path(dimm),
                format!("<memory model='{model}'> device: libxl cannot attach it and its contents would be lost"),
            );
        }
    }
    let Some(domain) = cx.domain() else { return };
    cx.remove_children(domain, &["maxMemory"], "(memory hot-plug slots): no memory hot-plug on Xen");
    // libvirt reads only the first of these; a later one must not come to
    // light when the first changes.
    cx.drop_duplicates(domain, "memory");
    cx.drop_duplicates(domain, "currentMemory");
    let memory = cx.doc().child(domain, "memory");
    // A size libvirt would not read (negative, overflowing, an unknown
    // unit) is refused rather than converted around.
    for e in [memory, cx.doc().child(domain, "currentMemory")].into_iter().flatten() {
        let text = cx.doc().text(e).unwrap_or("").trim().to_string();
        let unit = cx.doc().attr(e, "unit").map(str::to_string);
        if to_kib(&text, unit.as_deref()).is_none() {
            let name = cx.doc().qname(e).to_string();
            let shown = unit.map_or(text.clone(), |u| format!("{text} {u}"));
            cx.refuse(
                cx.doc().path(e),
                format!("<{name}> of '{shown}' is not a memory size libvirt reads (a whole number of b, KiB, MiB, GiB, TiB or the like, at most 8 EiB)"),
            );
        }
    }
    let total = memory.and_then(|m| to_kib(cx.doc().text(m)?, cx.doc().attr(m, "unit")));
    if let (Some(memory), Some(total)) = (memory, total) {
        if let Some(current) = cx.doc().child(domain, "currentMemory") {
            let cur = to_kib(cx.doc().text(current).unwrap_or(""), cx.doc().attr(current, "unit"));
            if cur != Some(total) {
                let text = cx.doc().text(memory).unwrap_or("").trim().to_string();
                let unit = cx.doc().attr(memory, "unit").map(str::to_string);
                cx.set_text(current, &text, "equal to <memory>: less would switch on populate-on-demand, which crashes guests without a balloon driver");
                match unit {
                    Some(u) => {
                        cx.set_attr(current, "unit", &u, "the unit of <memory>");
                    }
                    None => {
                        cx.remove_attr(current, "unit", "now that the value is that of <memory>, in KiB");
                    }
                }
            }
        }
        let min = cx.policy.min_memory_mib;
        if total < min * 1024 {
            cx.refuse(
                cx.doc().path(memory),
                format!(
                    "{} MiB of memory is below the policy's min_memory_mib ({min} MiB): such HVM guests die on Xen",
                    total / 1024
                ),
            );
        }
    }
    for (name, consequence) in [
        ("memoryBacking", "the guest's memory is no longer backed by huge pages, locked or shared as configured"),
        ("memtune", "the guest's memory limits are no longer enforced"),
        ("numatune", "the guest's memory is no longer bound to those host NUMA nodes"),
    ] {
        for e in cx.doc().children_named(domain, name).collect::<Vec<_>>() {
            cx.remove_warn(e, format!("<{name}>: libxl ignores it"), consequence);
        }
    }
}
