//! `interfaces-to-xen-pv`: NICs as libxl builds them. On HVM the model
//! string is handed to qemu as a device name and `virtio` is none, so virtio
//! NICs get the policy's emulated model (which also gives a Xen PV vif that
//! guests with PV drivers use); Vdsm's libvirt networks are bridges of the
//! same name; connection types libxl cannot make are refused; virtio tuning
//! is dropped; and filters, link state and VLANs, which libxl ignores, are
//! removed only as accepted losses.
//!
//! `<interface type='network'><source network='vdsm-ovirtmgmt'/><model type='virtio'/>` →
//! `<interface type='bridge'><source bridge='ovirtmgmt'/><model type='e1000'/>`

use super::{Cx, Pass};
use crate::doc::El;
use crate::policy::Loss;

pub const PASS: Pass = Pass {
    name: "interfaces-to-xen-pv",
    summary: "virtio NICs → nic_model (e1000), Vdsm networks → bridges, drop virtio tuning; filters, link state, VLANs only as accepted losses",
    run,
};

const IGNORED_CHILDREN: &[&str] = &["backend", "tune", "coalesce", "rom", "address", "target", "driver"];

fn run(cx: &mut Cx) {
    for nic in cx.devices_named("interface") {
        cx.keep_alias(nic);
        let ty = cx.doc().attr(nic, "type").unwrap_or("").to_string();
        match ty.as_str() {
            "bridge" | "ethernet" => {}
            "network" => network_to_bridge(cx, nic),
            "hostdev" => {
                hostdev_driver(cx, nic);
                controls(cx, nic);
                continue;
            }
            _ => {
                cx.refuse(
                    cx.doc().attr_path(nic, "type"),
                    format!("interface type '{ty}': libvirt's libxl driver rejects it (\"unsupported interface type\"); connect the NIC to a bridge"),
                );
                continue;
            }
        }
        model(cx, nic);
        for c in cx.doc().children(nic).collect::<Vec<_>>() {
            let name = cx.doc().qname(c).to_string();
            if IGNORED_CHILDREN.contains(&name.as_str()) && cx.doc().namespace(c).is_none() {
                let why = match name.as_str() {
                    "driver" => "<driver> (vhost and virtio queue settings): virtio-only, libxl ignores it".to_string(),
                    "target" => {
                        let dev = cx.doc().attr(c, "dev").unwrap_or("").to_string();
                        format!("<target dev='{dev}'>: a KVM tap name, wrong for a Xen vif; libvirt names the vif")
                    }
                    _ => format!("<{name}>: libxl ignores it"),
                };
                cx.remove(c, why);
            }
        }
        for mtu in cx.doc().children_named(nic, "mtu").collect::<Vec<_>>() {
            let size = cx.doc().attr(mtu, "size").unwrap_or("?").to_string();
            cx.remove_warn(
                mtu,
                format!("<mtu size='{size}'>: libxl ignores it"),
                "the vif uses the bridge's MTU; set the MTU on the bridge",
            );
        }
        bandwidth(cx, nic);
        controls(cx, nic);
    }
}

/// Vdsm's libvirt network `vdsm-NAME` is the bridge `NAME`.
fn network_to_bridge(cx: &mut Cx, nic: El) {
    let Some(source) = cx.doc().child(nic, "source") else {
        return;
    };
    let network = cx.doc().attr(source, "network").unwrap_or("").to_string();
    let live_bridge = cx.doc().attr(source, "bridge").map(str::to_string);
    let bridge = match (network.strip_prefix("vdsm-"), live_bridge) {
        (Some(name), _) if !name.is_empty() => name.to_string(),
        (_, Some(b)) => b,
        _ => {
            cx.warn(
                cx.doc().path(source),
                format!("libvirt network '{network}' must exist on the Xen host, and resolve to a bridge, for the NIC to connect"),
            );
            return;
        }
    };
    cx.set_attr(nic, "type", "bridge", "libxl connects vifs to bridges; Vdsm's networks are bridges");
    if cx.doc().attr(source, "bridge").is_some() {
        cx.remove_attr(source, "network", "is replaced by the bridge it resolves to");
    } else {
        cx.rename_attr(source, "network", "bridge", &bridge, "Vdsm's network vdsm-NAME is the host bridge NAME");
    }
    cx.remove_attrs(source, &["portgroup", "portid"], "belongs to a libvirt network, not a bridge");
}

fn model(cx: &mut Cx, nic: El) {
    let Some(model) = cx.doc().child(nic, "model") else {
        return;
    };
    let ty = cx.doc().attr(model, "type").unwrap_or("").to_string();
    if cx.pvh() {
        if ty != "netfront" {
            cx.set_attr(model, "type", "netfront", "PVH guests have PV NICs only");
        }
    } else if cx.live() {
        // libxl hot-plugs a NIC as a PV vif whatever the model says.
        cx.set_attr(
            model,
            "type",
            "netfront",
            "libxl hot-plugs NICs as Xen PV vifs only (the guest kind, HVM, is assumed from the policy); the guest needs Xen PV drivers to use it",
        );
    } else if ty.starts_with("virtio") {
        let nic_model = cx.policy.nic_model.clone();
        let why = if nic_model == "netfront" {
            "policy nic_model: a PV-only NIC (no PXE, no network without Xen PV drivers)".to_string()
        } else {
            format!("policy nic_model: qemu has no '{ty}' device on Xen HVM; the emulated {nic_model} also gives a Xen PV vif that guests with PV drivers use")
        };
        cx.set_attr(model, "type", &nic_model, &why);
    }
}

fn hostdev_driver(cx: &mut Cx, nic: El) {
    if let Some(driver) = cx.doc().child(nic, "driver") {
        if matches!(cx.doc().attr(driver, "name"), Some("vfio" | "kvm")) {
            cx.set_attr(driver, "name", "xen", "Xen assigns PCI devices through pciback; libvirt rejects vfio on Xen");
        }
    }
}

/// Keeps only the outbound average rate, the one limit libxl applies.
fn bandwidth(cx: &mut Cx, nic: El) {
    let Some(bw) = cx.doc().child(nic, "bandwidth") else {
        return;
    };
    let mut lost = false;
    lost |= cx.doc().child(bw, "inbound").is_some();
    cx.remove_children(bw, &["inbound"], "rate limit: libxl ignores it");
    if let Some(out) = cx.doc().child(bw, "outbound") {
        for a in ["peak", "burst", "floor"] {
            lost |= cx.remove_attr(out, a, "is ignored by libxl (only the average outbound rate is applied)");
        }
    }
    if lost {
        cx.warn(
            cx.doc().path(bw),
            "only the average outbound rate is limited now; inbound limits, peaks and bursts are not",
        );
    }
}

/// Filters, link state, port isolation and VLANs: controls libxl does not
/// enforce, removed only when the policy accepts their loss.
fn controls(cx: &mut Cx, nic: El) {
    for f in cx.doc().children_named(nic, "filterref").collect::<Vec<_>>() {
        let name = cx.doc().attr(f, "filter").unwrap_or("?").to_string();
        cx.remove_accepted(
            f,
            Loss::Nwfilter,
            format!("network filter '{name}' cannot be enforced by Xen (libvirt ignores or rejects it)"),
            format!("network filter '{name}'"),
            format!("filter '{name}' no longer applies: the guest can spoof addresses"),
        );
    }
    let ports: Vec<El> =
        cx.doc().children_named(nic, "port").filter(|p| cx.doc().attr(*p, "isolated") == Some("yes")).collect();
    for port in ports {
        cx.remove_accepted(
            port,
            Loss::Nwfilter,
            "port isolation (<port isolated='yes'>) cannot be enforced by Xen (libxl ignores it)",
            "<port isolated='yes'>",
            "the NIC is no longer isolated from other isolated ports on the bridge",
        );
    }
    let links: Vec<El> =
        cx.doc().children_named(nic, "link").filter(|l| cx.doc().attr(*l, "state") == Some("down")).collect();
    for link in links {
        cx.remove_accepted(
            link,
            Loss::LinkState,
            "link state 'down' cannot be enforced by Xen (libxl ignores it: the NIC would start with its cable plugged in)",
            "<link state='down'>",
            "the NIC starts with its link up",
        );
    }
    let ovs = cx.doc().child(nic, "virtualport").is_some_and(|v| cx.doc().attr(v, "type") == Some("openvswitch"));
    if ovs {
        return;
    }
    for vlan in cx.doc().children_named(nic, "vlan").collect::<Vec<_>>() {
        let tags: Vec<&str> = cx.doc().children_named(vlan, "tag").filter_map(|t| cx.doc().attr(t, "id")).collect();
        let tags = tags.join(",");
        cx.remove_accepted(
            vlan,
            Loss::Vlan,
            format!("VLAN {tags} cannot be enforced by Xen outside Open vSwitch (libxl ignores it)"),
            format!("VLAN {tags}"),
            "the NIC lands on the untagged network of its bridge",
        );
    }
}
