//! Which of libvirt's CPU models this Xen host can run, from what Xen and
//! dom0 can see of the host CPU. The Engine admits a host to a cluster of CPU
//! type X only when its `cpuFlags` hold `model_X`; on KVM libvirt lists the
//! usable models, on libxl nobody does, so the hook derives them here.
//!
//! A model (libvirt's `cpu_map`: a vendor and a list of CPUID features, in
//! `cpu_data.rs`) is reported when the host's vendor is the model's and no
//! feature of it that Xen would give an HVM guest is known to be missing:
//! - Only features Xen's default policy offers HVM guests (the upper-case
//!   attributes of Xen's `cpufeatureset.h`) are judged. xenify's
//!   `cpu-to-xen` pass drops the Engine's CPU model, so a guest sees Xen's
//!   own CPU policy: a feature Xen offers no guest by default (MPX, HLE,
//!   LA57, AMD's OSVW, the SVM leaf…) is missing on every Xen host alike and
//!   says nothing about this one, and `apic`/`x2apic` are emulated by Xen
//!   for every HVM guest whatever the host has.
//! - A feature is known from `xl info`'s `hw_caps`, the words of Xen's own
//!   featureset of the host CPU (Xen 4.7 and later: 1.edx, 1.ecx, e1.edx,
//!   e1.ecx, Da1, 7b0, 7c0, e7d), where a clear bit is a missing feature;
//!   beyond those words, from dom0's `/proc/cpuinfo`, where a present flag
//!   is a present feature and a missing one is missing only for the
//!   features Xen offers every guest (dom0 included) by default and Linux
//!   shows by a name of its own. Any other feature nobody can see is
//!   unknown, and an unknown feature does not withhold a model.

use std::collections::BTreeSet;

use super::cpu_data::{FEATURES, MODELS, VENDORS};

/// What Xen's default CPU policy does with a feature the host CPU has
/// (the attribute letters of Xen's `cpufeatureset.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// 'A': every guest gets it, PV (dom0) and HVM.
    All,
    /// 'S', 'H': HVM guests get it (with hardware-assisted paging for 'H').
    Hvm,
    /// Lower case: only a guest configured for it gets it.
    OptIn,
    /// No attribute, or not in Xen's featureset: no guest gets it from Xen's policy.
    Never,
}

/// A CPU feature as libvirt names it, and where Xen's featureset holds it.
pub struct Feature {
    pub name: &'static str,
    /// Word and bit of Xen's featureset; `None` when no word holds its CPUID leaf.
    pub xen: Option<(u8, u8)>,
    pub offer: Offer,
}

/// A CPU model of libvirt's `cpu_map`.
pub struct Model {
    pub name: &'static str,
    /// libvirt's vendor name (`Intel`, `AMD`, `Hygon`); `None` for generic models.
    pub vendor: Option<&'static str>,
    /// Indexes into `FEATURES`.
    pub features: &'static [u16],
}

/// Features Xen gives every HVM guest whatever the host CPU reports: Xen
/// emulates the local APIC and x2APIC itself (Xen's `calculate_hvm_max_policy`
/// sets both), so a host with x2APIC off still runs guests that have it.
const EMULATED: &[&str] = &["apic", "x2apic"];

/// Linux's `/proc/cpuinfo` names of the features beyond `hw_caps` that some
/// model needs (Linux's `cpufeatures.h`; `spec-ctrl` and AMD's `ibpb` show
/// as the flags Linux derives from them, `ibrs` and `ibpb`).
const LINUX_NAMES: &[(&str, &str)] = &[
    ("amd-ssbd", "ssbd"),
    ("amd-stibp", "stibp"),
    ("arat", "arat"),
    ("arch-capabilities", "arch_capabilities"),
    ("avx512-bf16", "avx512_bf16"),
    ("clzero", "clzero"),
    ("fsrm", "fsrm"),
    ("ibpb", "ibpb"),
    ("ibrs", "ibrs"),
    ("spec-ctrl", "ibrs"),
    ("ssbd", "ssbd"),
    ("stibp", "stibp"),
    ("wbnoinvd", "wbnoinvd"),
    ("xsaveerptr", "xsaveerptr"),
];

/// What Xen and dom0 show of the host CPU.
#[derive(Clone, Debug, Default)]
pub struct HostCpu {
    /// The CPUID vendor string (`GenuineIntel`), from dom0's `/proc/cpuinfo`.
    pub vendor: String,
    /// `xl info`'s `hw_caps`: the first words of Xen's featureset.
    pub hw_caps: Vec<u32>,
    /// dom0's `/proc/cpuinfo` flags.
    pub flags: BTreeSet<String>,
}

/// Whether a feature is present on the host CPU, as far as anyone can see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Present,
    Absent,
    Unknown,
}

impl HostCpu {
    /// libvirt's name of the host's vendor, if libvirt knows it.
    pub fn vendor_name(&self) -> Option<&'static str> {
        VENDORS.iter().find(|(_, cpuid)| *cpuid == self.vendor).map(|(name, _)| *name)
    }

    pub fn seen(&self, f: &Feature) -> Seen {
        if let Some((word, bit)) = f.xen {
            if let Some(w) = self.hw_caps.get(usize::from(word)) {
                return if w & (1 << bit) != 0 { Seen::Present } else { Seen::Absent };
            }
        }
        match LINUX_NAMES.iter().find(|(name, _)| *name == f.name) {
            Some((_, linux)) if self.flags.contains(*linux) => Seen::Present,
            Some(_) if f.offer == Offer::All => Seen::Absent,
            _ => Seen::Unknown,
        }
    }

    /// Whether the host CPU has the feature of this libvirt name.
    pub fn has(&self, name: &str) -> Seen {
        FEATURES.iter().find(|f| f.name == name).map_or(Seen::Unknown, |f| self.seen(f))
    }

    /// The features of `model` that rule it out here: judged, and absent.
    pub fn missing(&self, model: &Model) -> Vec<&'static str> {
        model
            .features
            .iter()
            .map(|&i| &FEATURES[usize::from(i)])
            .filter(|f| matches!(f.offer, Offer::All | Offer::Hvm) && !EMULATED.contains(&f.name))
            .filter(|f| self.seen(f) == Seen::Absent)
            .map(|f| f.name)
            .collect()
    }

    /// The models an HVM guest of this host can run, in `cpu_map`'s order.
    pub fn models(&self) -> Vec<&'static str> {
        let vendor = self.vendor_name();
        MODELS
            .iter()
            .filter(|m| m.vendor.is_none() || m.vendor == vendor)
            .filter(|m| self.missing(m).is_empty())
            .map(|m| m.name)
            .collect()
    }
}

/// Parses `xl info`'s `hw_caps` (`bfebfbff:7ffefbff:…`, eight hex words).
pub fn parse_hw_caps(text: &str) -> Result<Vec<u32>, String> {
    let words: Result<Vec<u32>, _> = text.trim().split(':').map(|w| u32::from_str_radix(w.trim(), 16)).collect();
    match words {
        Ok(w) if !w.is_empty() => Ok(w),
        _ => Err(format!("hw_caps '{}' is not a list of hexadecimal words", text.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fake Skylake-SP host's words (Xeon Silver 4110).
    const SKYLAKE_SP: &str = "bfebfbff:7ffefbff:2c100800:00000121:0000000f:d39ffffb:00000008:00000100";

    fn host(vendor: &str, hw_caps: &str, flags: &str) -> HostCpu {
        HostCpu {
            vendor: vendor.into(),
            hw_caps: parse_hw_caps(hw_caps).unwrap(),
            flags: flags.split_whitespace().map(String::from).collect(),
        }
    }

    fn model(name: &str) -> &'static Model {
        MODELS.iter().find(|m| m.name == name).unwrap()
    }

    #[test]
    fn every_model_feature_is_known_and_the_data_is_consistent() {
        for m in MODELS {
            for &i in m.features {
                assert!(usize::from(i) < FEATURES.len(), "{}", m.name);
            }
            if let Some(v) = m.vendor {
                assert!(VENDORS.iter().any(|(name, _)| *name == v), "{}: vendor {v}", m.name);
            }
        }
        for (name, _) in LINUX_NAMES {
            assert!(FEATURES.iter().any(|f| f.name == *name), "{name} is not a feature of any model");
        }
        // Spot checks of the generated data against the CPUID layout.
        let f = |n: &str| FEATURES.iter().find(|f| f.name == n).unwrap();
        assert_eq!(f("vmx").xen, Some((1, 5)));
        assert_eq!(f("svm").xen, Some((3, 2)));
        assert_eq!(f("avx512f").xen, Some((5, 16)));
        assert_eq!(f("spec-ctrl").xen, Some((9, 26)));
        assert_eq!(f("arat").xen, None);
        assert_eq!(f("mpx").offer, Offer::OptIn);
        assert_eq!(f("rtm").offer, Offer::All);
        assert_eq!(f("smep").offer, Offer::Hvm);
    }

    #[test]
    fn hw_caps_decide_the_words_they_hold() {
        let h = host("GenuineIntel", SKYLAKE_SP, "");
        assert_eq!(h.has("avx512f"), Seen::Present);
        assert_eq!(h.has("avx512vnni"), Seen::Absent, "7c0 bit 11 is clear");
        assert_eq!(h.has("vmx"), Seen::Present);
        assert_eq!(h.has("svm"), Seen::Absent);
    }

    #[test]
    fn beyond_hw_caps_cpuinfo_shows_presence_and_only_default_features_can_be_absent() {
        let h = host("GenuineIntel", SKYLAKE_SP, "ibrs ssbd");
        assert_eq!(h.has("spec-ctrl"), Seen::Present, "Linux shows spec-ctrl as ibrs");
        assert_eq!(h.has("ssbd"), Seen::Present);
        // Offered to every guest and shown by Linux: dom0 would see it.
        assert_eq!(h.has("avx512-bf16"), Seen::Absent);
        assert_eq!(h.has("stibp"), Seen::Absent);
        // Offered to HVM guests only: a PV dom0 cannot see it.
        assert_eq!(h.has("amd-stibp"), Seen::Unknown);
        // Outside Xen's featureset and hidden from dom0.
        assert_eq!(h.has("arat"), Seen::Unknown);
        // An MSR bit Linux does not show.
        assert_eq!(h.has("mds-no"), Seen::Unknown);
    }

    #[test]
    fn a_skylake_server_runs_up_to_skylake_server_but_not_cascadelake() {
        let h = host("GenuineIntel", SKYLAKE_SP, "ibrs ibpb stibp ssbd md_clear");
        let models = h.models();
        for m in ["Nehalem", "Westmere", "SandyBridge", "IvyBridge", "Haswell-noTSX", "Broadwell-noTSX"] {
            assert!(models.contains(&m), "{m}: {models:?}");
        }
        for m in ["Skylake-Client", "Skylake-Client-noTSX-IBRS", "Skylake-Server", "Skylake-Server-noTSX-IBRS"] {
            assert!(models.contains(&m), "{m}: {models:?}");
        }
        assert_eq!(h.missing(model("Cascadelake-Server")), ["avx512vnni"]);
        assert!(!models.iter().any(|m| m.starts_with("Icelake") || m.starts_with("EPYC") || m.starts_with("Opteron")));
    }

    #[test]
    fn without_ibrs_in_dom0_the_ibrs_models_are_withheld() {
        let h = host("GenuineIntel", SKYLAKE_SP, "");
        assert_eq!(h.missing(model("Skylake-Server-IBRS")), ["spec-ctrl"]);
        assert!(h.models().contains(&"Skylake-Server"));
    }

    #[test]
    fn features_xen_never_offers_do_not_count_and_emulated_ones_are_always_there() {
        // Clear MPX (7b0 bit 14, opt-in only) and x2APIC (1c bit 21, emulated).
        let mut h = host("GenuineIntel", SKYLAKE_SP, "ibrs ssbd");
        h.hw_caps[5] &= !(1 << 14);
        h.hw_caps[1] &= !(1 << 21);
        assert!(h.models().contains(&"Skylake-Server"), "{:?}", h.models());
        // Clear RTM (offered by default): the TSX models go, the noTSX ones stay.
        h.hw_caps[5] &= !(1 << 11);
        let models = h.models();
        assert!(!models.contains(&"Skylake-Server") && models.contains(&"Skylake-Server-noTSX-IBRS"), "{models:?}");
    }

    #[test]
    fn the_vendor_picks_the_models() {
        let amd = host("AuthenticAMD", SKYLAKE_SP, "");
        assert!(amd.models().iter().all(|m| model(m).vendor != Some("Intel")));
        let unknown = host("CyrixInstead", SKYLAKE_SP, "");
        assert!(unknown.models().iter().all(|m| model(m).vendor.is_none()));
    }

    #[test]
    fn hw_caps_must_be_hex_words() {
        assert_eq!(parse_hw_caps(" 0000000f:00000001 ").unwrap(), [15, 1]);
        assert!(parse_hw_caps("").is_err());
        assert!(parse_hw_caps("bfebfbff:xyz").unwrap_err().contains("'bfebfbff:xyz'"));
    }
}
