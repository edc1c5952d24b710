//! `video-to-xen`: the emulated graphics card. libxl uses only the first
//! `<video>`, rejects virtio, bochs, vmvga, ramfb and none, and requires
//! enough video RAM: 16 MiB for vga, 8 MiB for cirrus, 128 MiB for qxl
//! (Vdsm writes qxl with 8 or 32 MiB). A PVH guest has no emulated card:
//! its `<video>` goes, unless the engine tracks it by alias (libxl ignores
//! it there, so it stays, in the form an HVM guest would have it).
//!
//! `<model type='qxl' ram='65536' vram='8192' vgamem='16384' heads='1'/>` → `<model type='vga' vram='16384' heads='1'/>`

use super::{Cx, Pass};

pub const PASS: Pass = Pass {
    name: "video-to-xen",
    summary: "one video card, qxl → vga (or qxl with 128 MiB beside SPICE), enough vram, drop ram/vgamem",
    run,
};

fn run(cx: &mut Cx) {
    let videos = cx.devices_named("video");
    let mut first = true;
    for v in videos {
        let pvh_card = "a PVH guest has no emulated graphics card; its console is the Xen PV framebuffer";
        if cx.pvh() && !cx.keep_tracked(v, Some(pvh_card)) {
            cx.remove(v, "<video>: a PVH guest has no emulated graphics card");
            continue;
        }
        if !first {
            cx.remove(v, "second <video>: libxl uses only the first");
            continue;
        }
        first = false;
        let Some(model) = cx.doc().child(v, "model") else {
            continue;
        };
        let ty = cx.doc().attr(model, "type").unwrap_or("cirrus").to_string();
        let spice = cx.devices_named("graphics").into_iter().any(|g| cx.doc().attr(g, "type") == Some("spice"));
        let new_ty = match ty.as_str() {
            "qxl" if spice => "qxl",
            "vga" | "cirrus" | "xen" => ty.as_str(),
            _ => "vga",
        };
        if new_ty != ty {
            let why = if ty == "qxl" {
                "qxl is for SPICE, and the console is not SPICE".to_string()
            } else {
                format!("libxl rejects video type '{ty}'")
            };
            cx.set_attr(model, "type", new_ty, &why);
        }
        let min: u64 = match new_ty {
            "qxl" => 131072,
            "cirrus" => 8192,
            _ => 16384,
        };
        let vram = cx.doc().attr(model, "vram").and_then(|v| v.parse::<u64>().ok());
        // A new model starts from its minimum: the old card's size means nothing to it.
        if new_ty != ty || vram.is_some_and(|v| v < min) {
            cx.set_attr(
                model,
                "vram",
                &min.to_string(),
                &format!("libxl requires at least {} MiB of video RAM for {new_ty}", min / 1024),
            );
        }
        cx.remove_attrs(model, &["ram", "vgamem", "vram64"], "is ignored by libxl");
        // One head is what libxl gives; more are ignored.
        if cx.doc().attr(model, "heads").is_some_and(|h| h != "1") {
            cx.remove_attr(model, "heads", "is ignored by libxl: the card has one head");
        }
        cx.remove_children(model, &["acceleration"], "is ignored by libxl");
        cx.remove_children(v, &["address"], "is ignored by libxl");
        if new_ty != "virtio" {
            // vhostuser, iommu, ats, packed: libvirt rejects them on a card
            // that is not virtio.
            cx.remove_children(v, &["driver"], "holds virtio-only options, which libvirt rejects on a non-virtio card");
        }
    }
}
