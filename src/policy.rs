//! The policy: what the passes may do. It holds the settings of the
//! catalogue ("The policy") and the loss ids an administrator accepts; the
//! passes only read it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A security or isolation control that Xen cannot honour. A pass that meets
/// one refuses unless the policy accepts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Loss {
    Nwfilter,
    LinkState,
    Vlan,
    GraphicsSecurity,
    FloppyMedia,
    SecureBoot,
    Tpm,
}

impl Loss {
    pub const ALL: [Loss; 7] = [
        Loss::Nwfilter,
        Loss::LinkState,
        Loss::Vlan,
        Loss::GraphicsSecurity,
        Loss::FloppyMedia,
        Loss::SecureBoot,
        Loss::Tpm,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Loss::Nwfilter => "nwfilter",
            Loss::LinkState => "link-state",
            Loss::Vlan => "vlan",
            Loss::GraphicsSecurity => "graphics-security",
            Loss::FloppyMedia => "floppy-media",
            Loss::SecureBoot => "secure-boot",
            Loss::Tpm => "tpm",
        }
    }

    /// What the guest loses when this id is accepted, in one sentence.
    pub fn consequence(self) -> &'static str {
        match self {
            Loss::Nwfilter => "NIC filters such as vdsm-no-mac-spoofing are dropped, so the guest can spoof MAC and IP addresses",
            Loss::LinkState => "a NIC whose link is set down starts with its cable plugged in",
            Loss::Vlan => "a VLAN tag on a NIC outside Open vSwitch is dropped, so the guest lands on the untagged network",
            Loss::GraphicsSecurity => "the SPICE console loses TLS and its ticket expiry, so console traffic is unencrypted and passwords never expire",
            Loss::FloppyMedia => "the floppy (oVirt's sysprep payload) is removed, so Windows unattended setup will not run",
            Loss::SecureBoot => "UEFI secure boot is switched off, so the guest boots unsigned code",
            Loss::Tpm => "the virtual TPM is removed, so keys sealed to it (BitLocker, LUKS with TPM) stop working",
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Loss {
    type Err = String;

    fn from_str(s: &str) -> Result<Loss, String> {
        Loss::ALL.into_iter().find(|l| l.id() == s).ok_or_else(|| {
            let ids: Vec<&str> = Loss::ALL.iter().map(|l| l.id()).collect();
            format!("unknown loss id '{s}' (valid: {})", ids.join(", "))
        })
    }
}

/// The kind of guest to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guest {
    /// Fully virtualised, `machine='xenfv'`: runs every guest oVirt runs.
    Hvm,
    /// PVH, for Linux guests only.
    Pvh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qcow2 {
    /// Keep qcow2 disks on qemu-xen's qdisk backend.
    Qdisk,
    /// Refuse every qcow2 disk.
    Reject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyCdrom {
    /// Keep the empty drive, without a source.
    Keep,
    /// Remove empty CD-ROM drives.
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentChannels {
    /// Make guest-agent channels Xen PV channels.
    Xen,
    /// Remove them.
    Drop,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub guest: Guest,
    /// The kernel (or PVH grub image) a PVH guest boots when the domain has none.
    pub pvh_kernel: Option<String>,
    pub ovmf_path: String,
    pub nic_model: String,
    pub max_vcpus: u32,
    pub min_memory_mib: u64,
    pub qcow2: Qcow2,
    pub empty_cdrom: EmptyCdrom,
    pub agent_channels: AgentChannels,
    /// Console listen address when the host's bridge has none.
    pub graphics_listen: Option<String>,
    pub accept: BTreeSet<Loss>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            guest: Guest::Hvm,
            pvh_kernel: None,
            ovmf_path: "/usr/lib/xen/boot/ovmf.bin".to_string(),
            nic_model: "e1000".to_string(),
            max_vcpus: 128,
            min_memory_mib: 128,
            qcow2: Qcow2::Qdisk,
            empty_cdrom: EmptyCdrom::Keep,
            agent_channels: AgentChannels::Xen,
            graphics_listen: None,
            accept: BTreeSet::new(),
        }
    }
}

impl Policy {
    /// A policy that accepts every loss id.
    pub fn accepting_all() -> Policy {
        Policy {
            accept: Loss::ALL.into_iter().collect(),
            ..Policy::default()
        }
    }

    pub fn accepts(&self, loss: Loss) -> bool {
        self.accept.contains(&loss)
    }
}
