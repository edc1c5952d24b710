//! The rewrite passes, in pipeline order. [`ALL`] is the one list that the
//! CLI (`xenify passes`, `--only`, `--skip`), the README table and the
//! fixture folders are derived from; a test fails when one of them drifts.
//!
//! A pass is pure: it reads the document and the policy, edits the document
//! through [`Cx`], which records a finding for every edit, and returns
//! nothing else. It prints nothing, reads no file or environment, and never
//! calls another pass.

use std::net::Ipv4Addr;

use crate::doc::{At, Document, El, NewEl};
use crate::finding::{Finding, Kind};
use crate::policy::{Loss, Policy};

mod annotate_provenance;
mod boot_order_to_os;
mod check_disk_formats;
mod clock_to_xen;
mod cpu_to_xen;
mod devices_to_xen;
mod disks_to_xen_pv;
mod domain_type_to_xen;
mod features_to_xen;
mod fix_cdroms;
mod graphics_to_xen;
mod interfaces_to_xen_pv;
mod memballoon_to_xen;
mod memory_to_xen;
mod os_to_xen;
mod remove_floppies;
mod remove_kvm_only_elements;
mod remove_virtio_serial;
mod slots;
mod values;
mod vcpus_to_xen;
mod video_to_xen;

/// A named rewrite.
pub struct Pass {
    /// Kebab-case, with libvirt's nouns: `disks-to-xen-pv`.
    pub name: &'static str,
    /// One line for `xenify passes` and the README.
    pub summary: &'static str,
    pub run: fn(&mut Cx),
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every pass, in the order the pipeline runs them. Ordering constraints are
/// written here and only here.
pub static ALL: &[Pass] = &[
    // First: every later pass may assume `type='xen'`, and a non-x86 guest is
    // refused before anything else is planned for it.
    domain_type_to_xen::PASS,
    // Before features and clock: the guest kind (HVM or PVH) decides what they keep.
    os_to_xen::PASS,
    features_to_xen::PASS,
    clock_to_xen::PASS,
    // Before vcpus-to-xen, which clamps the count: cpu-to-xen computes the
    // same clamped count to check topology and NUMA cells against it.
    cpu_to_xen::PASS,
    vcpus_to_xen::PASS,
    // Before cpu NUMA checks would matter at start: removes DIMMs, so
    // <memory> is the one total left.
    memory_to_xen::PASS,
    // Disk names reserve the IDE slots that fix-cdroms will give CD-ROMs
    // (both use `slots`), so disks are named first.
    disks_to_xen_pv::PASS,
    // After disks-to-xen-pv has set the driver names it checks formats against.
    check_disk_formats::PASS,
    fix_cdroms::PASS,
    remove_floppies::PASS,
    interfaces_to_xen_pv::PASS,
    remove_virtio_serial::PASS,
    memballoon_to_xen::PASS,
    // Before video-to-xen: whether SPICE is kept decides the video model.
    graphics_to_xen::PASS,
    video_to_xen::PASS,
    devices_to_xen::PASS,
    // After every pass that removes devices: only the devices that remain
    // are given a place in the boot order.
    boot_order_to_os::PASS,
    remove_kvm_only_elements::PASS,
    // Last: it lists the passes that changed something.
    annotate_provenance::PASS,
];

/// Looks a pass up by name.
pub fn find(name: &str) -> Option<&'static Pass> {
    ALL.iter().find(|p| p.name == name)
}

/// What the host can tell the passes. The real lookup lives at the edge
/// (it reads the host); tests give a fixed table.
pub trait Host {
    /// The IPv4 address of the host's bridge `name`, if it has one.
    fn bridge_ipv4(&self, name: &str) -> Option<Ipv4Addr>;
}

/// A host that knows nothing: every lookup falls through to the policy.
pub struct NoHost;

impl Host for NoHost {
    fn bridge_ipv4(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
}

/// When in a VM's life a document is converted. The hook module tells it
/// from the Vdsm hook point; elsewhere it is not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Not known (the command line): a domain is started, a lone device is
    /// attached to a running guest.
    Unknown,
    /// A whole domain about to be defined and started.
    Start,
    /// One device added to a domain before it starts.
    DeviceCreate,
    /// One device attached to a running guest.
    Attach,
    /// One device of a running guest changed in place.
    Update,
}

/// What the passes read besides the document.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub host: &'a dyn Host,
    pub point: Point,
}

impl<'a> Context<'a> {
    pub fn new(policy: &'a Policy) -> Context<'a> {
        Context { policy, host: &NoHost, point: Point::Unknown }
    }
}

/// Runs `passes` in order over `doc` and returns every finding. A refusal
/// does not stop the run: every refusal is reported, and the caller writes
/// nothing when there is one.
pub fn run(doc: &mut Document, passes: &[&Pass], context: &Context) -> Vec<Finding> {
    let mut findings = Vec::new();
    for pass in passes {
        let mut cx = Cx {
            doc,
            policy: context.policy,
            host: context.host,
            point: context.point,
            pass: pass.name,
            findings: &mut findings,
        };
        (pass.run)(&mut cx);
    }
    findings
}

/// A pass's view of the run: the document, the policy and the host, and
/// the only way to edit the document, so that every edit leaves a finding.
pub struct Cx<'r, 'a> {
    doc: &'r mut Document<'a>,
    pub policy: &'r Policy,
    pub host: &'r dyn Host,
    pub point: Point,
    pass: &'static str,
    findings: &'r mut Vec<Finding>,
}

impl<'r, 'a> Cx<'r, 'a> {
    pub fn doc(&self) -> &Document<'a> {
        self.doc
    }

    /// The findings of the passes that ran before this one.
    pub fn earlier(&self) -> &[Finding] {
        self.findings
    }

    fn push(&mut self, kind: Kind, path: String, message: String, accept: Option<Loss>) {
        self.findings.push(Finding { pass: self.pass, kind, path, message, accept });
    }

    pub fn warn(&mut self, path: String, message: impl Into<String>) {
        self.push(Kind::Warning, path, message.into(), None);
    }

    pub fn refuse(&mut self, path: String, message: impl Into<String>) {
        self.push(Kind::Refused, path, message.into(), None);
    }

    /// Meets the loss `loss` at `path`. Returns true when the policy accepts
    /// it (the caller then removes or weakens the control and says so with
    /// [`Cx::accepted`]); otherwise records the refusal and returns false.
    pub fn loss(&mut self, path: String, loss: Loss, what: impl Into<String>) -> bool {
        if self.policy.accepts(loss) {
            return true;
        }
        self.push(Kind::Refused, path, what.into(), Some(loss));
        false
    }

    /// Warns that the accepted loss `loss` took effect at `path`.
    pub fn accepted(&mut self, path: String, loss: Loss, message: impl Into<String>) {
        let message = format!("{} (accepted loss '{}')", message.into(), loss);
        self.push(Kind::Warning, path, message, Some(loss));
    }

    /// Removes element `e`.
    /// A lone device document cannot lose its root: the device cannot go
    /// into the guest at all, which is a refusal.
    pub fn remove(&mut self, e: El, why: impl Into<String>) {
        let path = self.doc.path(e);
        self.remove_at(e, path, why.into());
    }

    /// `remove` with the path of `e` already known; false when `e` is the
    /// root and was refused instead.
    fn remove_at(&mut self, e: El, path: String, why: String) -> bool {
        if e == self.doc.root() {
            let message = format!("{why}; this device cannot be added on Xen: remove it from the VM");
            self.push(Kind::Refused, path, message, None);
            return false;
        }
        let why = match self.user_alias(e) {
            Some(alias) => format!("{why}; Vdsm and the engine no longer track this device (alias {alias})"),
            None => why,
        };
        self.doc.remove(e);
        self.push(Kind::Removed, path, why, None);
        true
    }

    /// The engine's user alias of device `e` (`<alias name='ua-…'/>`):
    /// libvirt keeps only such aliases when it defines a domain, and Vdsm
    /// and the engine track devices by them.
    pub fn user_alias(&self, e: El) -> Option<String> {
        let alias = self.doc.child(e, "alias")?;
        self.doc.attr(alias, "name").filter(|n| n.starts_with("ua-")).map(str::to_string)
    }

    /// Makes the alias of device `e` one libvirt keeps. libvirt keeps only
    /// user aliases (`ua-…`) when it defines a domain; a name it assigned
    /// itself (`virtio-disk0`, `net0`: a live dump) is dropped, and Vdsm,
    /// which matches disks to its own objects by alias, then confuses a disk
    /// with a NIC that lost its alias too. The name is kept behind `ua-`.
    pub fn keep_alias(&mut self, e: El) {
        let Some(alias) = self.doc.child(e, "alias") else {
            return;
        };
        let Some(name) = self.doc.attr(alias, "name").map(str::to_string) else {
            return;
        };
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name.starts_with("ua-") && valid {
            self.set_attr(
                alias,
                "name",
                &format!("ua-{name}"),
                "libvirt keeps only user aliases (ua-) when it defines a domain, and Vdsm matches devices by alias",
            );
        }
    }

    /// Keeps device `e`, which libxl ignores, when the engine tracks it by
    /// a user alias: removing it would make Vdsm and the engine lose it,
    /// while keeping it adds nothing to the guest. Its KVM `<address>` goes;
    /// `consequence`, if any, is what the guest lacks all the same. Returns
    /// false, changing nothing, when `e` has no user alias (the caller
    /// removes it then).
    pub fn keep_tracked(&mut self, e: El, consequence: Option<&str>) -> bool {
        let Some(alias) = self.user_alias(e) else {
            return false;
        };
        for a in self.doc.children_named(e, "address").collect::<Vec<_>>() {
            self.remove(a, "<address> is ignored by libxl");
        }
        if let Some(consequence) = consequence {
            let name = self.doc.qname(e).to_string();
            let path = self.doc.path(e);
            self.warn(
                path,
                format!("<{name}> is kept because Vdsm and the engine track it by its alias {alias}, but libxl ignores it: {consequence}"),
            );
        }
        true
    }

    /// Removes element `e`, then warns with `consequence` at its path.
    pub fn remove_warn(&mut self, e: El, why: impl Into<String>, consequence: impl Into<String>) {
        let path = self.doc.path(e);
        if self.remove_at(e, path.clone(), why.into()) {
            self.warn(path, consequence);
        }
    }

    /// Removes `e` if the policy accepts `loss` and says what the guest
    /// loses (`consequence`); otherwise refuses with `what`.
    pub fn remove_accepted(
        &mut self,
        e: El,
        loss: Loss,
        what: impl Into<String>,
        why: impl Into<String>,
        consequence: impl Into<String>,
    ) {
        let path = self.doc.path(e);
        if self.loss(path.clone(), loss, what) {
            self.remove_at(e, path.clone(), why.into());
            self.accepted(path, loss, consequence);
        }
    }

    /// Removes the children of `e` named `name` after the first: libvirt
    /// reads only the first, and a pass that removes the first must not
    /// bring a second to light on the next run.
    pub fn drop_duplicates(&mut self, e: El, name: &str) {
        self.drop_duplicates_of(e, name, "");
    }

    /// The same, saying whose child it is (`of`: " of a CD-ROM").
    pub fn drop_duplicates_of(&mut self, e: El, name: &str, of: &str) {
        let extra: Vec<El> = self.doc.children_named(e, name).skip(1).collect();
        for x in extra {
            self.remove(x, format!("second <{name}>{of}: libvirt reads only the first"));
        }
    }

    /// Removes every child of `e` named in `names`.
    pub fn remove_children(&mut self, e: El, names: &[&str], why: &str) {
        let kids: Vec<El> = self.doc.children(e).filter(|c| names.iter().any(|n| self.doc.is(*c, n))).collect();
        for c in kids {
            let name = self.doc.qname(c).to_string();
            self.remove(c, format!("<{name}> {why}"));
        }
    }

    /// Removes attribute `name` of `e` if present. Returns whether it was.
    pub fn remove_attr(&mut self, e: El, name: &str, why: &str) -> bool {
        let Some(old) = self.doc.attr(e, name).map(str::to_string) else {
            return false;
        };
        let path = self.doc.attr_path(e, name);
        self.doc.remove_attr(e, name);
        self.push(Kind::Removed, path, format!("{name}='{old}' {why}"), None);
        true
    }

    /// Removes every attribute of `e` named in `names`.
    pub fn remove_attrs(&mut self, e: El, names: &[&str], why: &str) {
        for n in names {
            self.remove_attr(e, n, why);
        }
    }

    /// Sets attribute `name` of `e` to `value`; records `changed` (or
    /// `added` at the element's path for a new attribute) when it differs.
    pub fn set_attr(&mut self, e: El, name: &str, value: &str, why: &str) -> bool {
        let old = self.doc.attr(e, name).map(str::to_string);
        if old.as_deref() == Some(value) {
            return false;
        }
        self.doc.set_attr(e, name, value);
        match old {
            Some(old) => {
                let path = self.doc.attr_path(e, name);
                self.push(Kind::Changed, path, format!("{name} '{old}' → '{value}': {why}"), None);
            }
            None => {
                let path = self.doc.path(e);
                self.push(Kind::Added, path, format!("{name}='{value}': {why}"), None);
            }
        }
        true
    }

    /// Renames attribute `old` of `e` to `new` with `value`, in place.
    pub fn rename_attr(&mut self, e: El, old: &str, new: &str, value: &str, why: &str) -> bool {
        let Some(old_value) = self.doc.attr(e, old).map(str::to_string) else {
            return false;
        };
        let path = self.doc.attr_path(e, old);
        self.doc.rename_attr(e, old, new, Some(value));
        self.push(Kind::Changed, path, format!("{old}='{old_value}' → {new}='{value}': {why}"), None);
        true
    }

    /// Replaces the text of `e`.
    pub fn set_text(&mut self, e: El, text: &str, why: &str) -> bool {
        // An element that holds a value has no children in libvirt's XML;
        // any there are go, each with its finding, before the text is set.
        let name = self.doc.qname(e).to_string();
        for c in self.doc.children(e).collect::<Vec<_>>() {
            let child = self.doc.qname(c).to_string();
            self.remove(c, format!("<{child}> inside <{name}>, which holds a value: libvirt reads no element there"));
        }
        let old = self.doc.text(e).unwrap_or("").trim().to_string();
        if !self.doc.set_text(e, text) {
            return false;
        }
        let path = self.doc.path(e);
        self.push(Kind::Changed, path, format!("'{old}' → '{text}': {why}"), None);
        true
    }

    /// Adds `new` under `parent` at `at`.
    pub fn add(&mut self, parent: El, at: At, new: NewEl, why: &str) -> El {
        let e = self.doc.insert(parent, at, &new);
        let path = self.doc.path(parent);
        self.push(Kind::Added, path, format!("<{}>: {why}", new.qname), None);
        e
    }

    // ----- lookups shared by passes -----

    /// The `<domain>` root, if the document is a domain.
    pub fn domain(&self) -> Option<El> {
        let r = self.doc.root();
        self.doc.is(r, "domain").then_some(r)
    }

    /// The device elements: the children of `<domain><devices>`, or the
    /// root itself when the document is a single device (hot-plug).
    pub fn devices(&self) -> Vec<El> {
        self.devices_where(|_| true)
    }

    /// The devices named `name`.
    pub fn devices_named(&self, name: &str) -> Vec<El> {
        self.devices_where(|d| self.doc.is(d, name))
    }

    fn devices_where(&self, keep: impl Fn(El) -> bool) -> Vec<El> {
        let r = self.doc.root();
        match self.domain() {
            Some(_) => {
                self.all("devices").into_iter().flat_map(|devs| self.doc.children(devs)).filter(|c| keep(*c)).collect()
            }
            None if is_device_element(self.doc.local(r)) && keep(r) => vec![r],
            None => Vec::new(),
        }
    }

    /// Every copy of the domain's child `name`. libvirt reads a repeated
    /// `<devices>`, `<os>`, `<features>`, `<clock>` or `<cputune>` as one:
    /// its queries (`./devices/disk`, `./clock/timer`, `./features/*`) match
    /// the children of every copy, so a pass converts them all.
    pub fn all(&self, name: &str) -> Vec<El> {
        self.domain().map_or_else(Vec::new, |d| self.doc.children_named(d, name).collect())
    }

    /// The maximum vCPU count once `vcpus-to-xen` has clamped it to the
    /// policy's `max_vcpus`, and the current count (at most that).
    pub fn vcpus(&self) -> Option<(u32, u32)> {
        let vcpu = self.doc.child(self.domain()?, "vcpu")?;
        let max: u32 = self.doc.text(vcpu)?.trim().parse().ok()?;
        let max = max.min(self.policy.max_vcpus);
        let current = self.doc.attr(vcpu, "current").and_then(|c| c.trim().parse().ok()).unwrap_or(max);
        Some((max, current.min(max)))
    }

    /// Is the document a lone device going into a running guest, where
    /// libxl hot-plugs only some devices?
    pub fn live(&self) -> bool {
        self.domain().is_none() && matches!(self.point, Point::Unknown | Point::Attach | Point::Update)
    }

    pub fn pvh(&self) -> bool {
        self.policy.guest == crate::policy::Guest::Pvh
    }
}

/// The elements libvirt allows inside `<devices>`, which are also the roots
/// Vdsm hands to the hot-plug hooks.
pub const DEVICE_ELEMENTS: &[&str] = &[
    "disk",
    "interface",
    "hostdev",
    "memory",
    "controller",
    "lease",
    "filesystem",
    "input",
    "graphics",
    "video",
    "sound",
    "watchdog",
    "rng",
    "memballoon",
    "channel",
    "console",
    "serial",
    "parallel",
    "smartcard",
    "redirdev",
    "redirfilter",
    "tpm",
    "panic",
    "shmem",
    "vsock",
    "iommu",
    "hub",
    "audio",
    "crypto",
    "nvram",
    "pstore",
];

pub fn is_device_element(name: &str) -> bool {
    DEVICE_ELEMENTS.contains(&name)
}
