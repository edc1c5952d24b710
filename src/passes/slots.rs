//! Disk names and the four emulated IDE slots, shared by `disks-to-xen-pv`
//! and `fix-cdroms` so that both agree on where the CD-ROMs go.
//!
//! On HVM, disks with index 0-3 (`xvda`-`xvdd`, `hda`-`hdd`) are also
//! emulated as IDE and share those slots; CD-ROMs must sit in one of them.

use std::collections::HashSet;

use crate::doc::{Document, El};

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

/// `xvd` and letters for a 0-based index: 0 → `xvda`, 26 → `xvdaa`.
pub fn xvd(index: u32) -> String {
    let mut letters = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    format!("xvd{}", String::from_utf8(letters).unwrap_or_default())
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

/// Does the drive (a CD-ROM) have media?
pub fn has_media(doc: &Document, drive: El) -> bool {
    doc.child(drive, "source").is_some_and(|s| {
        ["file", "dev", "name", "volume"].iter().any(|a| doc.attr(s, a).is_some_and(|v| !v.is_empty()))
    })
}

/// The slot a hard disk keeps without being renamed, if any: IDE disks
/// `hda`-`hdd` that are writable, and disks already on the Xen bus.
pub fn kept_slot(doc: &Document, disk: El) -> Option<u32> {
    let dev = target_dev(doc, disk)?;
    let (prefix, index) = split(dev)?;
    let readonly = doc.child(disk, "readonly").is_some();
    match (prefix, bus(doc, disk)) {
        ("hd", Some("ide")) if index < 4 && !readonly => Some(index),
        ("xvd", Some("xen")) if !(readonly && index < 4) => Some(index),
        _ => None,
    }
}

/// The IDE slots for `cdroms` in order, given the hard disks that keep
/// theirs: a CD-ROM already in a free IDE slot (`hda`-`hdd`) keeps it, so
/// that Vdsm's metadata and "Change CD" still find it; the others get `hdc`,
/// then `hdd`. `None` for a CD-ROM that does not fit.
pub fn cdrom_slots(doc: &Document, disks: &[El], cdroms: &[El]) -> Vec<Option<u32>> {
    let mut held: HashSet<u32> = disks.iter().filter_map(|d| kept_slot(doc, *d)).collect();
    let mut slots: Vec<Option<u32>> = cdroms
        .iter()
        .map(|c| {
            let dev = target_dev(doc, *c)?;
            let (prefix, index) = split(dev)?;
            let ide = matches!(target_bus(doc, *c), Some("ide") | None);
            (prefix == "hd" && index < 4 && ide && held.insert(index)).then_some(index)
        })
        .collect();
    let mut free = [2u32, 3].into_iter().filter(|s| !held.contains(s));
    for slot in slots.iter_mut().filter(|s| s.is_none()) {
        *slot = free.next();
    }
    slots
}

pub fn hd(slot: u32) -> String {
    format!("hd{}", (b'a' + slot as u8) as char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for i in [0, 1, 3, 4, 25, 26, 27, 701, 702, 20000] {
            assert_eq!(split(&xvd(i)), Some(("xvd", i)), "{i}");
        }
        assert_eq!(xvd(26), "xvdaa");
        assert_eq!(split("hdc"), Some(("hd", 2)));
        assert_eq!(split("vda1"), None);
        assert_eq!(split("nvme0n1"), None);
    }
}
