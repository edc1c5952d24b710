//! `vcpus-to-xen`: the vCPU count. Xen caps HVM and PVH guests at 128 vCPUs
//! and oVirt writes a maximum of 16 × the current count (160 or more), which
//! fails to start; libxl does hot-plug vCPUs up to the maximum, so it is
//! clamped to the policy's `max_vcpus` and no lower. Per-vCPU state
//! (`<vcpus><vcpu id enabled>`) is rejected by libvirt 9.0's libxl driver;
//! the count of enabled vCPUs is `<vcpu current>` already.
//!
//! `<vcpu current='1'>160</vcpu>` → `<vcpu current='1'>128</vcpu>`

use super::{Cx, Pass};

pub const PASS: Pass = Pass {
    name: "vcpus-to-xen",
    summary: "clamp the maximum vCPUs to max_vcpus (128), drop pins beyond it, per-vCPU state and the ignored cpuset",
    run,
};

fn run(cx: &mut Cx) {
    let Some(domain) = cx.domain() else { return };
    cx.drop_duplicates(domain, "vcpu");
    let Some(vcpu) = cx.doc().child(domain, "vcpu") else {
        return;
    };
    let count = |v: Option<&str>| v.is_none_or(|v| v.trim().parse::<u32>().is_ok_and(|n| n > 0));
    let text = cx.doc().text(vcpu).map(str::to_string);
    if !count(text.as_deref()) || text.is_none() {
        let shown = text.unwrap_or_default();
        cx.refuse(
            cx.doc().path(vcpu),
            format!("a vCPU count of '{}' is not one libvirt reads (a whole number from 1)", shown.trim()),
        );
        return;
    }
    if !count(cx.doc().attr(vcpu, "current")) {
        let shown = cx.doc().attr(vcpu, "current").unwrap_or("").to_string();
        cx.refuse(
            cx.doc().attr_path(vcpu, "current"),
            format!("a current vCPU count of '{shown}' is not one libvirt reads (a whole number from 1)"),
        );
        return;
    }
    let Some((max, current)) = cx.vcpus() else {
        return;
    };
    let limit = cx.policy.max_vcpus;
    let text = cx.doc().text(vcpu).unwrap_or("").trim().to_string();
    if text.parse::<u32>().is_ok_and(|m| m > max) {
        cx.set_text(
            vcpu,
            &max.to_string(),
            &if limit == 128 {
                "Xen runs HVM and PVH guests with at most 128 vCPUs (policy max_vcpus)".to_string()
            } else {
                format!("the policy's max_vcpus is {limit} (Xen allows HVM and PVH guests 128)")
            },
        );
    }
    if let Some(cur) = cx.doc().attr(vcpu, "current") {
        if cur.trim().parse::<u32>().is_ok_and(|c| c > current) {
            cx.set_attr(vcpu, "current", &current.to_string(), "the current vCPUs cannot exceed the maximum");
        }
    }
    if cx.doc().attr(vcpu, "cpuset").is_some() {
        let path = cx.doc().attr_path(vcpu, "cpuset");
        cx.remove_attr(vcpu, "cpuset", "is ignored by libxl");
        cx.warn(
            path,
            "the vCPUs are no longer confined to that host CPU set; pin them with <cputune><vcpupin> instead",
        );
    }
    // libvirt reads the pins of every <cputune> (`./cputune/vcpupin`).
    for cputune in cx.all("cputune") {
        let pins: Vec<_> = cx.doc().children_named(cputune, "vcpupin").collect();
        for pin in pins {
            let Some(v) = cx.doc().attr(pin, "vcpu").and_then(|v| v.parse::<u32>().ok()) else { continue };
            if v >= max {
                cx.remove(pin, format!("pins a vCPU beyond the {max} the guest now has"));
            } else if v >= current {
                cx.remove_warn(
                    pin,
                    format!("pins vCPU {v}, which is offline at start (current {current}): libvirt's libxl driver ignores pins of vCPUs it does not start"),
                    format!("vCPU {v} runs unpinned once it is hot-plugged"),
                );
            }
        }
    }
    cx.remove_children(
        domain,
        &["vcpus"],
        "(per-vCPU state): libvirt's libxl driver rejects it (\"individual CPU state configuration is not supported\"); <vcpu current> keeps the count",
    );
}
