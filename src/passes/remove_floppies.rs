//! `remove-floppies`: libxl cannot attach a floppy (`fda` is rejected). An
//! empty drive goes; one with media (oVirt's Windows sysprep payload) goes
//! only as the accepted loss `floppy-media`.
//!
//! `<disk device='floppy'>…<target dev='fda' bus='fdc'/></disk>` → (removed)

use super::slots::device_kind;
use super::{Cx, Pass};
use crate::policy::Loss;

pub const PASS: Pass = Pass {
    name: "remove-floppies",
    summary: "drop floppy drives; one with media (sysprep) only as the accepted loss floppy-media",
    run,
};

fn run(cx: &mut Cx) {
    for f in cx.devices_named("disk") {
        if device_kind(cx.doc(), f) != "floppy" {
            continue;
        }
        let doc = cx.doc();
        let media = doc
            .child(f, "source")
            .and_then(|s| ["file", "dev"].iter().find_map(|a| doc.attr(s, a)))
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        match media {
            None => cx.remove(f, "empty floppy drive: libxl cannot attach floppies"),
            Some(m) => cx.remove_accepted(
                f,
                Loss::FloppyMedia,
                format!("floppy with media '{m}' (oVirt's sysprep payload) cannot be attached by libxl"),
                format!("floppy with media '{m}': libxl cannot attach floppies"),
                "Windows sysprep (unattended setup) will not run",
            ),
        }
    }
}
