//! Values libvirt writes as text: memory sizes with units, CPU sets.

use std::collections::BTreeSet;

/// The largest memory size libvirt reads, in KiB: its limit is the largest
/// signed 64-bit number of bytes ("numerical overflow: value too large").
pub const MAX_KIB: u64 = i64::MAX as u64 / 1024;

/// Reads `value` in `unit` (libvirt's default is KiB) as KiB, rounding up
/// as libvirt does. `None` for anything libvirt would not parse.
pub fn to_kib(value: &str, unit: Option<&str>) -> Option<u64> {
    let n: u64 = value.trim().parse().ok()?;
    let bytes_per_unit: u128 = match unit.unwrap_or("KiB") {
        "b" | "bytes" => 1,
        "KB" => 1000,
        "k" | "K" | "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "G" | "GiB" => 1 << 30,
        "TB" => 1000u128.pow(4),
        "T" | "TiB" => 1 << 40,
        "PB" => 1000u128.pow(5),
        "P" | "PiB" => 1 << 50,
        "EB" => 1000u128.pow(6),
        "E" | "EiB" => 1 << 60,
        _ => return None,
    };
    let kib = (n as u128 * bytes_per_unit).div_ceil(1024);
    u64::try_from(kib).ok().filter(|k| *k <= MAX_KIB)
}

/// Reads a libvirt CPU set (`0-3,^2,8`) as the set of CPU ids, refusing
/// sets above `limit` ids (a bound for hostile input).
pub fn cpuset(s: &str, limit: u32) -> Option<BTreeSet<u32>> {
    let mut set = BTreeSet::new();
    let mut excluded = BTreeSet::new();
    for part in s.split(',').map(str::trim) {
        let (neg, part) = match part.strip_prefix('^') {
            Some(p) => (true, p),
            None => (false, part),
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if lo > hi || hi >= limit {
            return None;
        }
        let target = if neg { &mut excluded } else { &mut set };
        target.extend(lo..=hi);
    }
    Some(set.difference(&excluded).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpusets() {
        assert_eq!(cpuset("0-3,^2,8", 100), Some([0, 1, 3, 8].into_iter().collect()));
        assert_eq!(cpuset("0,1", 100), Some([0, 1].into_iter().collect()));
        assert_eq!(cpuset("3-1", 100), None);
        assert_eq!(cpuset("0-5000000", 4096), None);
    }

    #[test]
    fn units() {
        assert_eq!(to_kib("4194304", None), Some(4194304));
        assert_eq!(to_kib("4096", Some("MiB")), Some(4194304));
        assert_eq!(to_kib("1", Some("GB")), Some(976563));
        assert_eq!(to_kib("1", Some("b")), Some(1));
        assert_eq!(to_kib("x", None), None);
        assert_eq!(to_kib("1", Some("furlong")), None);
        assert_eq!(to_kib("-1", None), None);
        assert_eq!(to_kib("9007199254740991", None), Some(MAX_KIB));
        assert_eq!(to_kib("9007199254740992", None), None);
        assert_eq!(to_kib("9", Some("EiB")), None);
    }
}
