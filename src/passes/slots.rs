//! Disk names, shared by `disks-to-xen-pv` and `fix-cdroms` so that both
//! agree on where the CD-ROMs go.
//!
//! A converted disk needs a name two readers accept: libxl (`xvd*`,
//! `hd[a-d]`, `sd[a-p]`) and Vdsm, whose `drivename` parses only `hd`,
//! `sd`, `vd` and `fd` names when it rebuilds a VM from libvirt's XML. Both
//! accept `hda`-`hdd` and `sda`-`sdp`: twenty names. On HVM, `hda`-`hdd`
//! are emulated as IDE (and also offered as Xen PV disks); `sd*` disks are
//! emulated on an LSI SCSI controller, which many guests (Windows without
//! Xen PV drivers) cannot drive. CD-ROMs must sit in an IDE slot, and
//! qemu-xen refuses read-only IDE disks.

use std::collections::HashSet;

use crate::doc::{Document, El};

/// `hda`-`hdd`: the four IDE slots.
pub const IDE_SLOTS: u32 = 4;

/// `sda`-`sdp`: the SCSI names libxl decodes.
pub const SCSI_NAMES: u32 = 16;

/// The prefix and 0-based index of a disk name: `xvdb` → (`xvd`, 1),
/// `sdaa` → (`sd`, 26). Letters count like a spreadsheet's columns.
pub fn split(dev: &str) -> Option<(&str, u32)> {
    let prefix = ["xvd", "hd", "sd", "vd", "fd"].into_iter().find(|p| dev.starts_with(p))?;
    let letters = &dev[prefix.len()..];
    if letters.is_empty() || letters.len() > 4 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let n = letters.bytes().fold(0u32, |acc, b| acc * 26 + u32::from(b - b'a') + 1);
    Some((prefix, n - 1))
}

/// `prefix` and letters for a 0-based index: (`sd`, 0) → `sda`, (`xvd`, 26) → `xvdaa`.
pub fn name(prefix: &str, index: u32) -> String {
    let mut letters = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    format!("{prefix}{}", String::from_utf8(letters).unwrap_or_default())
}

pub fn hd(slot: u32) -> String {
    name("hd", slot)
}

pub fn sd(index: u32) -> String {
    name("sd", index)
}

pub fn target_dev<'d>(doc: &'d Document, disk: El) -> Option<&'d str> {
    doc.child(disk, "target").and_then(|t| doc.attr(t, "dev"))
}

pub fn target_bus<'d>(doc: &'d Document, disk: El) -> Option<&'d str> {
    doc.child(disk, "target").and_then(|t| doc.attr(t, "bus"))
}

/// The bus a disk is on: its target's `bus`, or, as libvirt does when that
/// is missing, the one its name implies (`xvdb` is on the Xen bus).
pub fn bus<'d>(doc: &'d Document, disk: El) -> Option<&'d str> {
    target_bus(doc, disk).or_else(|| {
        let (prefix, _) = split(target_dev(doc, disk)?)?;
        match prefix {
            "hd" => Some("ide"),
            "sd" => Some("scsi"),
            "vd" => Some("virtio"),
            "xvd" => Some("xen"),
            _ => None,
        }
    })
}

pub fn device_kind<'d>(doc: &'d Document, disk: El) -> &'d str {
    doc.attr(disk, "device").unwrap_or("disk")
}

/// Is `disk` a hard disk (not a CD-ROM or floppy)?
pub fn is_hard_disk(doc: &Document, disk: El) -> bool {
    matches!(device_kind(doc, disk), "disk" | "lun")
}

pub fn is_cdrom(doc: &Document, disk: El) -> bool {
    device_kind(doc, disk) == "cdrom"
}

pub fn is_readonly(doc: &Document, disk: El) -> bool {
    doc.child(disk, "readonly").is_some()
}

/// Does the drive (a CD-ROM) have media?
pub fn has_media(doc: &Document, drive: El) -> bool {
    doc.child(drive, "source").is_some_and(|s| {
        ["file", "dev", "name", "volume"].iter().any(|a| doc.attr(s, a).is_some_and(|v| !v.is_empty()))
    })
}

/// Does the hard disk keep its name? Writable IDE disks `hda`-`hdd` do
/// (both readers accept them and they are emulated as IDE already), and so
/// do disks already on the Xen bus (a Xen domain's own `xvd` names, which
/// Vdsm never writes, and hot-plugged disks xenify named). A read-only disk
/// never keeps an IDE slot.
pub fn keeps_name(doc: &Document, disk: El) -> bool {
    let Some((prefix, index)) = target_dev(doc, disk).and_then(split) else {
        return false;
    };
    let readonly = is_readonly(doc, disk);
    match (prefix, bus(doc, disk)) {
        ("hd", Some("ide")) => index < IDE_SLOTS && !readonly && device_kind(doc, disk) == "disk",
        ("xvd", Some("xen")) => !(readonly && index < IDE_SLOTS),
        // A hot-plugged disk as xenify names it: on the Xen bus, with the
        // drive address libvirt does not assign there.
        ("sd", Some("xen")) => {
            index < SCSI_NAMES && doc.children_named(disk, "address").any(|a| doc.attr(a, "type") == Some("drive"))
        }
        _ => false,
    }
}

/// The IDE slot a hard disk that keeps its name holds (`xvda`-`xvdd` are
/// emulated in the same slots as `hda`-`hdd`).
pub fn kept_ide_slot(doc: &Document, disk: El) -> Option<u32> {
    if !keeps_name(doc, disk) {
        return None;
    }
    let (_, index) = split(target_dev(doc, disk)?)?;
    (index < IDE_SLOTS).then_some(index)
}

/// The IDE slots for `cdroms` in order, given the hard disks that keep
/// theirs: a CD-ROM already in a free IDE slot (`hda`-`hdd`) keeps it, so
/// that Vdsm's metadata and "Change CD" still find it; the others get `hdc`,
/// then `hdd`. `None` for a CD-ROM that does not fit.
pub fn cdrom_slots(doc: &Document, disks: &[El], cdroms: &[El]) -> Vec<Option<u32>> {
    let mut held: HashSet<u32> = disks.iter().filter_map(|d| kept_ide_slot(doc, *d)).collect();
    let mut slots: Vec<Option<u32>> = cdroms
        .iter()
        .map(|c| {
            let dev = target_dev(doc, *c)?;
            let (prefix, index) = split(dev)?;
            let ide = matches!(target_bus(doc, *c), Some("ide") | None);
            (prefix == "hd" && index < IDE_SLOTS && ide && held.insert(index)).then_some(index)
        })
        .collect();
    let mut free = [2u32, 3].into_iter().filter(|s| !held.contains(s));
    for slot in slots.iter_mut().filter(|s| s.is_none()) {
        *slot = free.next();
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for i in [0, 1, 3, 4, 25, 26, 27, 701, 702, 20000] {
            assert_eq!(split(&name("xvd", i)), Some(("xvd", i)), "{i}");
            assert_eq!(split(&sd(i)), Some(("sd", i)), "{i}");
        }
        assert_eq!(name("xvd", 26), "xvdaa");
        assert_eq!(sd(15), "sdp");
        assert_eq!(split("hdc"), Some(("hd", 2)));
        assert_eq!(split("vda1"), None);
        assert_eq!(split("nvme0n1"), None);
    }
}
