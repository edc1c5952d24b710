//! `memballoon-to-xen`: the balloon is Xen's own. libvirt rejects virtio
//! balloons ("unsupported balloon device model") and `model='none'` ("balloon
//! device cannot be disabled") on Xen.
//!
//! A balloon the engine disabled (`model='none'`) is enabled on Xen. Vdsm
//! leaves such a VM alone only when the engine also wrote
//! `<ovirt-vm:ballooningEnabled>false</ovirt-vm:ballooningEnabled>` (current
//! engines do); older XML without it gets a warning, since Vdsm (and MOM)
//! will then balloon the guest.
//!
//! `<memballoon model='virtio'><stats period='5'/></memballoon>` → `<memballoon model='xen'/>`

use super::{Cx, Pass};
use crate::doc::El;

pub const PASS: Pass = Pass {
    name: "memballoon-to-xen",
    summary: "<memballoon model='xen'/>, dropping stats, address, autodeflate, freePageReporting",
    run,
};

fn run(cx: &mut Cx) {
    for b in cx.devices_named("memballoon") {
        let model = cx.doc().attr(b, "model").unwrap_or("").to_string();
        if model == "xen" {
            continue;
        }
        let why = if model == "none" {
            "libvirt cannot disable the balloon on Xen; Xen's own balloon driver is used"
        } else {
            "Xen's balloon is not a virtio device"
        };
        cx.set_attr(b, "model", "xen", why);
        if model == "none" && !ballooning_disabled(cx) && cx.domain().is_some() {
            cx.warn(
                cx.doc().path(b),
                "the engine configured this VM without a balloon, but its metadata lacks <ovirt-vm:ballooningEnabled>false</ovirt-vm:ballooningEnabled>: Vdsm will balloon it on Xen (a hook cannot change Vdsm's metadata; disable memory ballooning in the cluster, or save the VM again from a current engine)",
            );
        }
        cx.remove_attrs(b, &["autodeflate", "freePageReporting"], "is a virtio balloon setting");
        cx.remove_children(b, &["stats", "address", "driver"], "belongs to the virtio balloon");
    }
}

/// Does Vdsm's metadata say the VM is not to be ballooned?
fn ballooning_disabled(cx: &Cx) -> bool {
    let doc = cx.doc();
    let Some(metadata) = cx.domain().and_then(|d| doc.child(d, "metadata")) else {
        return false;
    };
    let in_ovirt = |e: &El| doc.namespace(*e) == Some(crate::OVIRT_VM_NS);
    doc.children(metadata)
        .filter(|e| in_ovirt(e) && doc.local(*e) == "vm")
        .flat_map(|vm| doc.children(vm).collect::<Vec<_>>())
        .filter(|e| in_ovirt(e) && doc.local(*e) == "ballooningEnabled")
        .any(|e| doc.text(e).is_some_and(|t| t.trim() == "false"))
}
