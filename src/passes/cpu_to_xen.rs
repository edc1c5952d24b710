//! `cpu-to-xen`: the guest CPU. libxl ignores custom and host-model CPUs
//! (model, features, topology), so they go; host-passthrough is kept with a
//! topology that matches the vCPU count, which libvirt checks. Vdsm writes a
//! one-cell `<numa>` for every VM, meaningless as vNUMA and refused by libxl
//! beside populate-on-demand memory or PCI passthrough, so it goes too.
//!
//! Several cells stay only beside a host-passthrough CPU, and only when
//! libxl can build them (every vCPU in exactly one cell, cell memory summing
//! to `<memory>`). A custom-mode `<cpu>` kept for its cells alone makes
//! libvirt 9.0 warn that it ignores the CPU, so there the cells go with the
//! CPU, with a warning. (On a host with fewer NUMA nodes than cells libvirt
//! warns too and places every cell on node 0; the guest still runs.)
//!
//! `<cpu match='exact'><model>Haswell</model><numa><cell cpus='0-1' …/></numa></cpu>` → (removed)

use super::values::{cpuset, to_kib};
use super::{Cx, Pass};
use crate::doc::El;

pub const PASS: Pass = Pass {
    name: "cpu-to-xen",
    summary: "drop custom/host-model CPUs and one-cell NUMA, fit host-passthrough topology to the vCPU count",
    run,
};

fn run(cx: &mut Cx) {
    let Some(domain) = cx.domain() else { return };
    cx.drop_duplicates(domain, "cpu");
    let Some(cpu) = cx.doc().child(domain, "cpu") else { return };
    cx.drop_duplicates(cpu, "numa");
    cx.drop_duplicates(cpu, "topology");
    let (max, _) = cx.vcpus().unwrap_or((1, 1));
    let mode = cx.doc().attr(cpu, "mode").unwrap_or("custom").to_string();
    if mode == "host-passthrough" {
        drop_numa_unless_it_fits(cx, domain, cpu, max);
        fit_topology(cx, cpu, max);
        return;
    }
    // libvirt ignores the whole CPU definition in these modes ("Ignoring CPU
    // with mode=custom"), so vNUMA cells would be kept only beside a CPU
    // definition that libvirt warns about: the cells go with it.
    let model = cx.doc().child(cpu, "model").and_then(|m| cx.doc().text(m)).unwrap_or("").trim().to_string();
    let what =
        if model.is_empty() { format!("CPU mode '{mode}'") } else { format!("CPU mode '{mode}' (model {model})") };
    let numa = cx.doc().child(cpu, "numa");
    let cells = numa.map_or(0, |n| cx.doc().children_named(n, "cell").count());
    cx.remove(cpu, format!("{what}: libxl ignores model, features and topology"));
    if let Some(numa) = numa.filter(|_| cells > 1) {
        cx.warn(
            cx.doc().path(numa),
            format!("the guest's {cells} NUMA nodes are dropped with the CPU definition: it sees one node"),
        );
    }
}

fn drop_numa_unless_it_fits(cx: &mut Cx, domain: El, cpu: El, max: u32) {
    let Some(numa) = cx.doc().child(cpu, "numa") else {
        return;
    };
    if numa_fits(cx, domain, numa, max) {
        return;
    }
    let cells = cx.doc().children_named(numa, "cell").count();
    if cells <= 1 {
        cx.remove(
            numa,
            "one NUMA cell: meaningless as vNUMA, and libxl refuses vNUMA with PoD memory or PCI passthrough",
        );
    } else {
        cx.remove_warn(
            numa,
            format!("{cells} NUMA cells that do not fit the vCPUs and memory exactly"),
            "the guest sees one NUMA node",
        );
    }
}

/// Can libxl build vNUMA from these cells: more than one, every vCPU below
/// `max` in exactly one cell, and cell memory summing to `<memory>`?
fn numa_fits(cx: &Cx, domain: El, numa: El, max: u32) -> bool {
    let doc = cx.doc();
    let cells: Vec<El> = doc.children_named(numa, "cell").collect();
    if cells.len() < 2 {
        return false;
    }
    let Some(total) = doc.child(domain, "memory").and_then(|m| to_kib(doc.text(m)?, doc.attr(m, "unit"))) else {
        return false;
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut sum = 0u64;
    for c in cells {
        let Some(cpus) = doc.attr(c, "cpus").and_then(|s| cpuset(s, 4096)) else {
            return false;
        };
        for id in cpus {
            if id >= max || !seen.insert(id) {
                return false;
            }
        }
        match doc.attr(c, "memory").and_then(|m| to_kib(m, doc.attr(c, "unit"))) {
            Some(kib) => sum += kib,
            None => return false,
        }
    }
    seen.len() as u32 == max && sum == total
}

/// libvirt requires sockets × cores × threads to equal the maximum vCPUs.
fn fit_topology(cx: &mut Cx, cpu: El, max: u32) {
    let Some(topo) = cx.doc().child(cpu, "topology") else {
        return;
    };
    let get = |name: &str| cx.doc().attr(topo, name).and_then(|v| v.parse::<u32>().ok()).unwrap_or(1);
    let (sockets, dies, cores, threads) = (get("sockets"), get("dies"), get("cores"), get("threads"));
    if sockets * dies * cores * threads == max {
        return;
    }
    let per_socket = dies * cores * threads;
    if per_socket > 0 && max.is_multiple_of(per_socket) {
        cx.set_attr(
            topo,
            "sockets",
            &(max / per_socket).to_string(),
            &format!("sockets × dies × cores × threads must equal the {max} vCPUs"),
        );
    } else {
        cx.remove_warn(
            topo,
            format!(
                "<topology> of {cores} cores per socket and {threads} threads per core cannot make up the {max} vCPUs"
            ),
            "the guest sees one core per socket",
        );
    }
}
