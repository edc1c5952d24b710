//! `memballoon-to-xen`: the balloon is Xen's own. libvirt rejects virtio
//! balloons ("unsupported balloon device model") and `model='none'` ("balloon
//! device cannot be disabled") on Xen.
//!
//! `<memballoon model='virtio'><stats period='5'/></memballoon>` → `<memballoon model='xen'/>`

use super::{Cx, Pass};

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
        cx.remove_attrs(b, &["autodeflate", "freePageReporting"], "is a virtio balloon setting");
        cx.remove_children(b, &["stats", "address", "driver"], "belongs to the virtio balloon");
    }
}
