//! The policy: what the passes may do. It holds the settings of the
//! catalogue ("The policy") and the loss ids an administrator accepts, and
//! it is the one module that reads configuration: the TOML policy file,
//! per-VM overrides (given to it as name/value pairs by the hook, which
//! alone knows that Vdsm passes custom properties as environment variables)
//! and command-line flags, in that order of precedence ([`MERGE_RULE`]:
//! `accept` only grows). A bad key, type or value is an error naming the key
//! and where it was set; nothing is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
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
    ScsiPassthrough,
}

impl Loss {
    pub const ALL: [Loss; 8] = [
        Loss::Nwfilter,
        Loss::LinkState,
        Loss::Vlan,
        Loss::GraphicsSecurity,
        Loss::FloppyMedia,
        Loss::SecureBoot,
        Loss::Tpm,
        Loss::ScsiPassthrough,
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
            Loss::ScsiPassthrough => "scsi-passthrough",
        }
    }

    /// What the guest loses when this id is accepted, in one sentence.
    pub fn consequence(self) -> &'static str {
        match self {
            Loss::Nwfilter => "NIC filters such as vdsm-no-mac-spoofing are dropped, so the guest can spoof MAC and IP addresses",
            Loss::LinkState => "a NIC whose link is set down starts with its cable plugged in",
            Loss::Vlan => "a VLAN tag on a NIC outside Open vSwitch is dropped, so the guest lands on the untagged network",
            Loss::GraphicsSecurity => "the console loses TLS and its ticket expiry, so console traffic is unencrypted and passwords never expire (a console Vdsm locked with its placeholder password '*****' opens with it)",
            Loss::FloppyMedia => "the floppy (oVirt's sysprep payload) is removed, so Windows unattended setup will not run",
            Loss::SecureBoot => "UEFI secure boot is switched off, so the guest boots unsigned code",
            Loss::Tpm => "the virtual TPM is removed, so keys sealed to it (BitLocker, LUKS with TPM) stop working",
            Loss::ScsiPassthrough => "a passed-through SCSI LUN becomes a plain disk: SCSI commands and persistent reservations no longer reach the device, so cluster software in the guest (fencing, quorum disks) stops working",
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
    /// The machine types the `after_get_caps` hook offers oVirt Engine.
    pub machine_types: Vec<String>,
    /// Every loss id accepted by any source: the union of `accepted`.
    pub accept: BTreeSet<Loss>,
    /// What each source that set `accept` added, in the order applied.
    pub accepted: Vec<(Source, Vec<Loss>)>,
    /// Where each non-default setting but `accept` came from, by key.
    pub sources: BTreeMap<&'static str, Source>,
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
            machine_types: DEFAULT_MACHINE_TYPES.iter().map(|m| m.to_string()).collect(),
            accept: BTreeSet::new(),
            accepted: Vec::new(),
            sources: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// A policy that accepts every loss id.
    pub fn accepting_all() -> Policy {
        Policy { accept: Loss::ALL.into_iter().collect(), ..Policy::default() }
    }

    pub fn accepts(&self, loss: Loss) -> bool {
        self.accept.contains(&loss)
    }

    /// The loss ids accepted by the sources `from` picks, in the order they
    /// were given: what a hint must repeat when it names a new value for
    /// that same setting.
    pub fn accepted_from(&self, from: impl Fn(&Source) -> bool) -> Vec<Loss> {
        let mut ids = Vec::new();
        for (source, losses) in &self.accepted {
            if from(source) {
                for l in losses {
                    if !ids.contains(l) {
                        ids.push(*l);
                    }
                }
            }
        }
        ids
    }
}

/// How the sources of the policy combine; the README, xenify.toml(5) and the
/// shipped policy file state it in these words (tests/docs.rs checks).
pub const MERGE_RULE: &str = "Each source overrides the ones before it, key by key: the policy file, then the VM's custom properties xenify_KEY (the hook, and xenify check, which reads them from the domain's metadata), then the command line's --set and --accept. The exception is accept, which only grows: every source adds its loss ids to those already accepted, so a VM's xenify_accept or a --accept never takes back a loss the policy file accepts.";

/// The machine types oVirt Engine looks for in a host's `emulatedMachines`,
/// i440fx then q35: its `ClusterEmulatedMachines` for x86 at cluster levels
/// 4.2 to 4.7 (ovirt-engine's `0000_config.sql` and upgrade scripts). Every
/// VM runs on Xen's own machine whatever it asks, so a name only tells the
/// Engine which chipset family it may ask for (q35 for UEFI VMs).
pub const DEFAULT_MACHINE_TYPES: &[&str] = &[
    "pc-i440fx-rhel7.3.0",
    "pc-i440fx-2.6",
    "pc-i440fx-rhel7.6.0",
    "pc-i440fx-2.12",
    "pc-q35-rhel8.1.0",
    "pc-q35-rhel8.3.0",
    "pc-q35-rhel8.4.0",
    "pc-q35-rhel8.5.0",
    "pc-q35-rhel8.6.0",
    "pc-q35-4.1",
];

/// The chipset of a machine type as oVirt Engine reads it
/// (`ChipsetType.fromMachineType`): a `-`-separated part `i440fx` or `q35`,
/// else `pc` for i440fx; `None` for anything else (`pseries`, `xenfv`…).
pub fn chipset_of(machine: &str) -> Option<&'static str> {
    let parts: Vec<String> = machine.split('-').map(str::to_lowercase).collect();
    if parts.iter().any(|p| p == "q35") {
        Some("q35")
    } else if parts.iter().any(|p| p == "i440fx" || p == "pc") {
        Some("i440fx")
    } else {
        None
    }
}

/// A key of the policy file, as documented in the shipped default file and
/// the man page; [`KEYS`] drives both and the parser.
pub struct Key {
    pub name: &'static str,
    /// The TOML type and the values allowed.
    pub values: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

pub const KEYS: &[Key] = &[
    Key { name: "guest", values: "\"hvm\" | \"pvh\"", default: "\"hvm\"", doc: "the kind of Xen guest to build: HVM runs every guest oVirt runs; PVH is for Linux guests with a PVH kernel" },
    Key { name: "pvh_kernel", values: "absolute path", default: "(none)", doc: "the kernel (or grub PVH image) PVH guests boot when the domain has no direct kernel boot" },
    Key { name: "ovmf_path", values: "absolute path", default: "\"/usr/lib/xen/boot/ovmf.bin\"", doc: "Xen's OVMF build, the firmware of UEFI guests" },
    Key { name: "nic_model", values: "\"e1000\" | \"rtl8139\" | \"e1000e\" | \"netfront\"", default: "\"e1000\"", doc: "what virtio NICs become on HVM: an emulated model (with a PV vif for guests with Xen drivers) or netfront (PV only: no PXE)" },
    Key { name: "max_vcpus", values: "integer, 1 to 128", default: "128", doc: "the maximum vCPUs a guest keeps (Xen HVM and PVH allow 128)" },
    Key { name: "min_memory_mib", values: "integer, 0 to 1048576", default: "128", doc: "guests with less memory (MiB) are refused: they die on Xen" },
    Key { name: "qcow2", values: "\"qdisk\" | \"reject\"", default: "\"qdisk\"", doc: "keep qcow2 disks on qemu-xen's qdisk backend, or refuse them on hosts without it" },
    Key { name: "empty_cdrom", values: "\"keep\" | \"remove\"", default: "\"keep\"", doc: "keep empty CD-ROM drives (without a <source>), or remove them (then \"Change CD\" cannot insert media)" },
    Key { name: "agent_channels", values: "\"xen\" | \"drop\"", default: "\"xen\"", doc: "make guest-agent channels Xen PV channels on the same socket, or remove them" },
    Key { name: "graphics_listen", values: "IP address", default: "(none: 0.0.0.0 with a warning)", doc: "the console listen address when the Vdsm network's bridge has no IPv4 address on this host" },
    Key { name: "machine_types", values: "list of i440fx or q35 machine type names", default: "[\"pc-i440fx-rhel7.3.0\", \"pc-i440fx-2.6\", \"pc-i440fx-rhel7.6.0\", \"pc-i440fx-2.12\", \"pc-q35-rhel8.1.0\", \"pc-q35-rhel8.3.0\", \"pc-q35-rhel8.4.0\", \"pc-q35-rhel8.5.0\", \"pc-q35-rhel8.6.0\", \"pc-q35-4.1\"]", doc: "the machine types a Xen dom0 offers oVirt Engine (its after_get_caps hook; the Engine's own names, cluster levels 4.2 to 4.7): VMs run on Xen's own machine whatever they ask, so leave out the q35 names to keep UEFI VMs, which need q35, off the host" },
    Key { name: "accept", values: "list of loss ids", default: "[]", doc: "the controls Xen cannot honour whose loss the administrator accepts (see the loss ids)" },
];

/// The commented policy file xenify ships as /etc/xenify/xenify.toml: every
/// key with its values and default (commented out, so the defaults hold),
/// and every loss id with what accepting it costs.
pub fn default_file() -> String {
    let mut out = String::from(
        "# xenify policy: what xenify may do when it converts an oVirt VM for Xen.\n\
         # The Vdsm hook reads this file (or the one $XENIFY_CONFIG names), and so does\n\
         # xenify check. Every key is commented out: the value shown is the default.\n\
         # See xenify.toml(5).\n#\n",
    );
    out.push_str(&wrap_comment(MERGE_RULE, 80));
    for k in KEYS {
        out.push_str(&format!("\n# {}.\n# Values: {}.\n", capitalise(k.doc), k.values));
        let example = match k.name {
            "pvh_kernel" => "\"/usr/lib/grub-xen/grub-i386-xen_pvh.bin\"",
            "graphics_listen" => "\"192.0.2.10\"",
            _ => k.default,
        };
        if k.default.starts_with('(') {
            out.push_str(&format!("# Default: {}.\n", k.default.trim_matches(['(', ')'])));
        }
        out.push_str(&format!("#{} = {}\n", k.name, example));
        if k.name == "accept" {
            out.push_str("#\n# The loss ids, and what accepting each costs:\n");
            for l in Loss::ALL {
                out.push_str(&format!("#   {:<18} {}.\n", l.id(), capitalise(l.consequence())));
            }
            out.push_str("# Example: accept = [\"nwfilter\", \"graphics-security\"]\n");
        }
    }
    out
}

/// `text` as `# ` comment lines of at most `width` columns (a longer word
/// stands alone).
pub fn wrap_comment(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The sentence case of a phrase.
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// Where a setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The policy file, at a line.
    File { path: String, line: usize },
    /// A per-VM override (a Vdsm custom property, named as the variable).
    Property { name: String },
    /// A command-line flag.
    Flag { name: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File { path, line: 0 } => write!(f, "{path}"),
            Source::File { path, line } => write!(f, "{path} line {line}"),
            Source::Property { name } => write!(f, "VM custom property {name}"),
            Source::Flag { name } => write!(f, "command-line flag {name}"),
        }
    }
}

/// A setting that could not be taken, with the key and where it was set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub key: String,
    pub source: Source,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "invalid policy in {}: {}", self.source, self.message)
        } else {
            write!(f, "invalid policy in {}: {}: {}", self.source, self.key, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

/// A value as a source gives it, before it is checked against its key.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// Untyped text (a custom property, a flag): read as the key's type.
    Text(String),
    /// A TOML string: only a string key takes it.
    Str(String),
    Int(i64),
    List(Vec<Raw>),
    /// Any other TOML type, by name.
    Other(&'static str),
}

impl Raw {
    fn type_name(&self) -> &'static str {
        match self {
            Raw::Text(_) | Raw::Str(_) => "a string",
            Raw::Int(_) => "an integer",
            Raw::List(_) => "a list",
            Raw::Other(t) => t,
        }
    }
}

/// A setting that is not the default, with where it came from, for the report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    pub key: &'static str,
    /// For `accept`, the loss ids this one source added.
    pub value: Value,
    pub source: String,
}

/// A policy value, typed: JSON gets a string, a number or a list, the text
/// report the TOML spelling.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Str(String),
    Int(u64),
    List(Vec<String>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::List(items) => {
                let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
                write!(f, "[{}]", quoted.join(", "))
            }
        }
    }
}

fn ids(losses: &[Loss]) -> Value {
    Value::List(losses.iter().map(|l| l.id().to_string()).collect())
}

impl Policy {
    /// The value of `key`; `None` for an optional key that is not set.
    pub fn value(&self, key: &str) -> Option<Value> {
        let s = |v: &str| Some(Value::Str(v.to_string()));
        match key {
            "guest" => s(if self.guest == Guest::Pvh { "pvh" } else { "hvm" }),
            "pvh_kernel" => self.pvh_kernel.as_deref().and_then(s),
            "ovmf_path" => s(&self.ovmf_path),
            "nic_model" => s(&self.nic_model),
            "max_vcpus" => Some(Value::Int(self.max_vcpus.into())),
            "min_memory_mib" => Some(Value::Int(self.min_memory_mib)),
            "qcow2" => s(if self.qcow2 == Qcow2::Reject { "reject" } else { "qdisk" }),
            "empty_cdrom" => s(if self.empty_cdrom == EmptyCdrom::Remove { "remove" } else { "keep" }),
            "agent_channels" => s(if self.agent_channels == AgentChannels::Drop { "drop" } else { "xen" }),
            "graphics_listen" => self.graphics_listen.as_deref().and_then(s),
            "machine_types" => Some(Value::List(self.machine_types.clone())),
            _ => Some(ids(&self.accept.iter().copied().collect::<Vec<_>>())),
        }
    }

    /// The value of `key` as it would be written in the policy file.
    pub fn value_of(&self, key: &str) -> String {
        self.value(key).map_or("(none)".into(), |v| v.to_string())
    }

    /// Every setting that a file, a custom property or a flag set, in the
    /// order of [`KEYS`]; `accept` once per source that added loss ids.
    pub fn settings(&self) -> Vec<Setting> {
        let mut out = Vec::new();
        for k in KEYS {
            if k.name == "accept" {
                for (source, losses) in &self.accepted {
                    out.push(Setting { key: k.name, value: ids(losses), source: source.to_string() });
                }
            } else if let (Some(source), Some(value)) = (self.sources.get(k.name), self.value(k.name)) {
                out.push(Setting { key: k.name, value, source: source.to_string() });
            }
        }
        out
    }

    /// Takes one setting. Strings from per-VM overrides and flags are read
    /// as the key's type (`"64"` for an integer, `"a,b"` for a list).
    pub fn set(&mut self, key: &str, raw: Raw, source: Source) -> Result<(), PolicyError> {
        let err = |message: String| PolicyError { key: key.to_string(), source: source.clone(), message };
        let Some(k) = KEYS.iter().find(|k| k.name == key) else {
            let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
            return Err(err(format!("unknown key (the keys are: {})", names.join(", "))));
        };
        let text = |raw: &Raw| match raw {
            Raw::Text(s) | Raw::Str(s) => Ok(s.trim().to_string()),
            other => Err(err(format!("expected a string ({}), found {}", k.values, other.type_name()))),
        };
        let integer = |raw: &Raw, lo: i64, hi: i64| -> Result<i64, PolicyError> {
            let n = match raw {
                Raw::Int(n) => *n,
                Raw::Text(s) => {
                    s.trim().parse().map_err(|_| err(format!("expected an integer ({}), found '{s}'", k.values)))?
                }
                other => return Err(err(format!("expected an integer ({}), found {}", k.values, other.type_name()))),
            };
            if n < lo || n > hi {
                return Err(err(format!("{n} is out of range ({lo} to {hi})")));
            }
            Ok(n)
        };
        let choice = |raw: &Raw, allowed: &[&str]| -> Result<String, PolicyError> {
            let v = text(raw)?;
            if allowed.contains(&v.as_str()) {
                Ok(v)
            } else {
                Err(err(format!("'{v}' is not one of {}", k.values)))
            }
        };
        let path = |raw: &Raw| -> Result<String, PolicyError> {
            let v = text(raw)?;
            if v.starts_with('/') {
                Ok(v)
            } else {
                Err(err(format!("'{v}' is not an absolute path")))
            }
        };
        match k.name {
            "guest" => self.guest = if choice(&raw, &["hvm", "pvh"])? == "pvh" { Guest::Pvh } else { Guest::Hvm },
            "pvh_kernel" => self.pvh_kernel = Some(path(&raw)?),
            "ovmf_path" => self.ovmf_path = path(&raw)?,
            "nic_model" => self.nic_model = choice(&raw, &["e1000", "rtl8139", "e1000e", "netfront"])?,
            "max_vcpus" => self.max_vcpus = integer(&raw, 1, 128)? as u32,
            "min_memory_mib" => self.min_memory_mib = integer(&raw, 0, 1 << 20)? as u64,
            "qcow2" => {
                self.qcow2 = if choice(&raw, &["qdisk", "reject"])? == "reject" { Qcow2::Reject } else { Qcow2::Qdisk }
            }
            "empty_cdrom" => {
                self.empty_cdrom =
                    if choice(&raw, &["keep", "remove"])? == "remove" { EmptyCdrom::Remove } else { EmptyCdrom::Keep }
            }
            "agent_channels" => {
                self.agent_channels =
                    if choice(&raw, &["xen", "drop"])? == "drop" { AgentChannels::Drop } else { AgentChannels::Xen }
            }
            "graphics_listen" => {
                let v = text(&raw)?;
                v.parse::<IpAddr>().map_err(|_| err(format!("'{v}' is not an IP address")))?;
                self.graphics_listen = Some(v);
            }
            "machine_types" => {
                let items: Vec<String> = match &raw {
                    Raw::List(items) => items.iter().map(text).collect::<Result<_, _>>()?,
                    Raw::Text(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
                    other => return Err(err(format!("expected a list of machine types, found {}", other.type_name()))),
                };
                if let Some(bad) = items.iter().find(|m| chipset_of(m).is_none()) {
                    return Err(err(format!(
                        "'{bad}' is neither an i440fx nor a q35 machine type (pc-i440fx-…, pc-q35-…)"
                    )));
                }
                if items.is_empty() {
                    return Err(err("the list is empty: the Engine admits no host without a machine type".into()));
                }
                self.machine_types = items;
            }
            _ => {
                // "accept": a list, or comma-separated text from a property or flag.
                let items: Vec<String> = match &raw {
                    Raw::List(items) => items.iter().map(text).collect::<Result<_, _>>()?,
                    Raw::Text(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
                    other => return Err(err(format!("expected a list of loss ids, found {}", other.type_name()))),
                };
                // Every source adds to what the sources before it accepted (MERGE_RULE).
                let mut added: Vec<Loss> = Vec::new();
                for i in &items {
                    let l = i.parse::<Loss>().map_err(&err)?;
                    if !added.contains(&l) {
                        added.push(l);
                    }
                }
                self.accept.extend(added.iter().copied());
                if !added.is_empty() {
                    self.accepted.push((source, added));
                }
                return Ok(());
            }
        }
        self.sources.insert(k.name, source);
        Ok(())
    }

    /// Takes every setting of a TOML policy file; `path` names it in errors.
    pub fn apply_toml(&mut self, text: &str, path: &str) -> Result<(), PolicyError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let table = toml::de::DeTable::parse(text).map_err(|e| PolicyError {
            key: String::new(),
            source: Source::File { path: path.to_string(), line: e.span().map_or(1, |s| line_of(s.start)) },
            message: format!("not valid TOML: {}", e.message()),
        })?;
        for (key, value) in table.get_ref().iter() {
            let source = Source::File { path: path.to_string(), line: line_of(key.span().start) };
            self.set(key.get_ref(), raw_of(value.get_ref()), source)?;
        }
        Ok(())
    }
}

fn raw_of(v: &toml::de::DeValue) -> Raw {
    use toml::de::DeValue;
    match v {
        DeValue::String(s) => Raw::Str(s.to_string()),
        DeValue::Integer(i) => {
            i64::from_str_radix(i.as_str(), i.radix()).map_or(Raw::Other("an integer out of range"), Raw::Int)
        }
        DeValue::Array(a) => Raw::List(a.iter().map(|x| raw_of(x.get_ref())).collect()),
        DeValue::Float(_) => Raw::Other("a float"),
        DeValue::Boolean(_) => Raw::Other("a boolean"),
        DeValue::Datetime(_) => Raw::Other("a date"),
        DeValue::Table(_) => Raw::Other("a table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_file_sets_keys_and_remembers_where() {
        let mut p = Policy::default();
        p.apply_toml(
            "# host defaults\nnic_model = \"netfront\"\naccept = [\"nwfilter\", \"tpm\"]\nmax_vcpus = 64\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(p.nic_model, "netfront");
        assert_eq!(p.max_vcpus, 64);
        assert!(p.accepts(Loss::Tpm) && p.accepts(Loss::Nwfilter) && !p.accepts(Loss::Vlan));
        assert_eq!(p.sources["nic_model"], Source::File { path: "x.toml".into(), line: 2 });
    }

    #[test]
    fn the_shipped_file_parses_to_the_defaults_and_documents_every_key_and_loss() {
        let text = default_file();
        let mut p = Policy::default();
        p.apply_toml(&text, "xenify.toml").unwrap();
        assert_eq!(p, Policy::default());
        for k in KEYS {
            assert!(text.contains(&format!("\n#{} = ", k.name)), "{}", k.name);
        }
        for l in Loss::ALL {
            assert!(text.contains(l.consequence().get(1..).unwrap()), "{l}");
        }
        // Uncommenting every key gives a valid file too.
        let uncommented: String = text
            .lines()
            .filter(|l| KEYS.iter().any(|k| l.starts_with(&format!("#{} = ", k.name))))
            .map(|l| format!("{}\n", &l[1..]))
            .collect();
        Policy::default().apply_toml(&uncommented, "x").unwrap();
    }

    #[test]
    fn every_documented_default_is_the_defaults_value() {
        let p = Policy::default();
        for k in KEYS.iter().filter(|k| !k.default.starts_with('(')) {
            assert_eq!(p.value_of(k.name), k.default, "{}", k.name);
        }
        assert_eq!(p.machine_types, DEFAULT_MACHINE_TYPES);
    }

    #[test]
    fn machine_types_are_i440fx_or_q35_names() {
        let mut p = Policy::default();
        p.apply_toml("machine_types = [\"pc-q35-rhel9.2.0\", \"pc\"]\n", "x.toml").unwrap();
        assert_eq!(p.machine_types, ["pc-q35-rhel9.2.0", "pc"]);
        p.set("machine_types", Raw::Text("pc-i440fx-2.12, q35".into()), Source::Flag { name: "--set".into() }).unwrap();
        assert_eq!(p.machine_types, ["pc-i440fx-2.12", "q35"]);
        let e = p.apply_toml("machine_types = [\"pc-q35-4.1\", \"pseries-rhel8.4.0\"]\n", "x.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid policy in x.toml line 1: machine_types: 'pseries-rhel8.4.0' is neither an i440fx nor a q35 machine type (pc-i440fx-…, pc-q35-…)"
        );
        let e = p.apply_toml("machine_types = []\n", "x.toml").unwrap_err();
        assert!(e.to_string().contains("the list is empty"), "{e}");
        assert_eq!(chipset_of("pc-i440fx-rhel7.6.0"), Some("i440fx"));
        assert_eq!(chipset_of("pc-Q35-4.1"), Some("q35"));
        assert_eq!(chipset_of("xenfv"), None);
    }

    #[test]
    fn bad_settings_name_the_key_and_the_source() {
        let mut p = Policy::default();
        let e = p.apply_toml("\n\nmax_vcpus = 500\n", "x.toml").unwrap_err();
        assert_eq!(e.to_string(), "invalid policy in x.toml line 3: max_vcpus: 500 is out of range (1 to 128)");
        let e = p.apply_toml("nic = 1\n", "x.toml").unwrap_err();
        assert!(e.to_string().starts_with("invalid policy in x.toml line 1: nic: unknown key"), "{e}");
        let e = p.apply_toml("qcow2 = true\n", "x.toml").unwrap_err();
        assert!(e.to_string().contains("qcow2: expected a string"), "{e}");
        let e = p.apply_toml("max_vcpus = \"64\"\n", "x.toml").unwrap_err();
        assert!(e.to_string().contains("max_vcpus: expected an integer"), "{e}");
        let e = p.apply_toml("accept = \"nwfilter\"\n", "x.toml").unwrap_err();
        assert!(e.to_string().contains("accept: expected a list of loss ids, found a string"), "{e}");
        let e = p.set("accept", Raw::Text("nwfilter,bogus".into()), Source::Property { name: "xenify_accept".into() });
        assert!(e
            .unwrap_err()
            .to_string()
            .starts_with("invalid policy in VM custom property xenify_accept: accept: unknown loss id 'bogus'"));
        let e = p.apply_toml("max_vcpus = [\n", "x.toml").unwrap_err();
        assert!(e.to_string().starts_with("invalid policy in x.toml line"), "{e}");
    }

    #[test]
    fn every_source_adds_to_accept_and_the_report_says_which_added_what() {
        let mut p = Policy::default();
        p.apply_toml("accept = [\"nwfilter\"]\nmax_vcpus = 64\n", "x.toml").unwrap();
        p.set("accept", Raw::Text("tpm, nwfilter".into()), Source::Property { name: "xenify_accept".into() }).unwrap();
        p.set("max_vcpus", Raw::Text("32".into()), Source::Flag { name: "--set max_vcpus".into() }).unwrap();
        p.set("accept", Raw::Text(String::new()), Source::Flag { name: "--accept".into() }).unwrap();
        assert!(p.accepts(Loss::Nwfilter) && p.accepts(Loss::Tpm) && p.max_vcpus == 32);
        let settings: Vec<String> =
            p.settings().iter().map(|s| format!("{} = {} ({})", s.key, s.value, s.source)).collect();
        assert_eq!(
            settings,
            [
                "max_vcpus = 32 (command-line flag --set max_vcpus)",
                "accept = [\"nwfilter\"] (x.toml line 1)",
                "accept = [\"tpm\", \"nwfilter\"] (VM custom property xenify_accept)",
            ]
        );
        assert_eq!(p.accepted_from(|s| matches!(s, Source::Property { .. })), [Loss::Tpm, Loss::Nwfilter]);
        assert_eq!(serde_json::to_string(&p.settings()[0].value).unwrap(), "32");
    }
}
