//! `fix-cdroms`: CD-ROM drives as libxl emulates them, on IDE at `hdc` and
//! `hdd`. libvirt has dereferenced a null pointer on an empty `file=''`, so
//! an empty tray has no `<source>` at all; `startupPolicy` is ignored (a
//! missing ISO fails the start).
//!
//! `<source file='' startupPolicy='optional'/><target dev='sdc' bus='sata'/>` → `<target dev='hdc' bus='ide'/>`

use super::slots::{cdrom_slots, has_media, hd, is_cdrom, is_hard_disk};
use super::{Cx, Pass};
use crate::doc::{At, El, NewEl};
use crate::policy::EmptyCdrom;

pub const PASS: Pass = Pass {
    name: "fix-cdroms",
    summary: "CD-ROMs on IDE at hdc/hdd, empty trays without <source>, drop startupPolicy",
    run,
};

fn run(cx: &mut Cx) {
    let all = cx.devices_named("disk");
    let cdroms: Vec<El> = all.iter().copied().filter(|d| is_cdrom(cx.doc(), *d)).collect();
    for c in cdroms {
        cx.drop_duplicates_of(c, "source", " of a CD-ROM");
        if cx.doc().attr(c, "type") == Some("network") {
            let source = cx.doc().child(c, "source");
            let protocol = source.and_then(|s| cx.doc().attr(s, "protocol")).unwrap_or("(none)").to_string();
            if protocol != "rbd" {
                cx.refuse(
                    cx.doc().path(c),
                    format!("CD-ROM over network protocol '{protocol}': libxl opens only rbd network images (\"Unsupported network block protocol\"); copy the image to the host and attach it as a file"),
                );
            }
        }
        if has_media(cx.doc(), c) {
            continue;
        }
        if cx.policy.empty_cdrom == EmptyCdrom::Remove {
            cx.remove_warn(
                c,
                "empty CD-ROM drive (policy empty_cdrom = \"remove\")",
                "the VM has no CD-ROM drive, so oVirt's \"Change CD\" cannot insert media",
            );
        } else if let Some(s) = cx.doc().child(c, "source") {
            cx.remove(s, "empty <source> of an empty tray: libvirt has crashed on file=''; no <source> means no media");
        }
    }
    let all = cx.devices_named("disk");
    let disks: Vec<El> = all.iter().copied().filter(|d| is_hard_disk(cx.doc(), *d)).collect();
    let cdroms: Vec<El> = all.iter().copied().filter(|d| is_cdrom(cx.doc(), *d)).collect();
    let lone = cx.domain().is_none();
    for (c, slot) in cdroms.iter().copied().zip(cdrom_slots(cx.doc(), &disks, &cdroms)) {
        let Some(slot) = slot else {
            cx.refuse(
                cx.doc().path(c),
                "a third CD-ROM: libxl emulates CD-ROMs on IDE only, and the two slots beside the disks (hdc, hdd) are taken; remove a CD-ROM",
            );
            continue;
        };
        let target = match cx.doc().child(c, "target") {
            Some(t) => t,
            None => cx.add(c, At::Last, NewEl::new("target"), "a CD-ROM needs an IDE slot"),
        };
        // A media change on a running guest names the drive as it is.
        if !(lone && cx.doc().attr(target, "dev").is_some_and(|d| d.starts_with("hd"))) {
            cx.set_attr(target, "dev", &hd(slot), "CD-ROMs sit in the IDE slots beside the disks (hdc, then hdd)");
        }
        cx.set_attr(target, "bus", "ide", "libxl emulates CD-ROMs on IDE only");
        if let Some(source) = cx.doc().child(c, "source") {
            if cx.doc().attr(source, "startupPolicy").is_some() {
                let path = cx.doc().attr_path(source, "startupPolicy");
                cx.remove_attr(source, "startupPolicy", "is ignored by libxl");
                let when = if cx.live() { "the media change" } else { "the VM start" };
                cx.warn(path, format!("a missing ISO now fails {when} instead of leaving the tray empty"));
            }
        }
        cx.remove_children(c, &["serial", "address"], "is ignored by libxl");
        cx.keep_alias(c);
    }
}
