//! `remove-kvm-only-elements`: what only QEMU/KVM reads. The QEMU namespace
//! means nothing to libxl, and I/O threads, blkio and resource partitions,
//! perf counters, key wrapping and most of `<cputune>` are ignored. SELinux
//! labels stay (harmless) with a warning, and SEV/TDX guests are refused.
//!
//! `<qemu:commandline><qemu:arg value='-s'/></qemu:commandline>`, `<iothreads>1</iothreads>` → (removed)

use super::{Cx, Pass};

pub const PASS: Pass = Pass {
    name: "remove-kvm-only-elements",
    summary: "drop qemu: extensions, iothreads, blkiotune, resource, perf, keywrap, KVM cputune; refuse launchSecurity",
    run,
};

pub const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

const IGNORED: &[&str] =
    &["iothreads", "iothreadids", "defaultiothread", "blkiotune", "resource", "perf", "keywrap", "throttlegroups"];

fn run(cx: &mut Cx) {
    let Some(domain) = cx.domain() else { return };
    for c in cx.doc().children(domain).collect::<Vec<_>>() {
        let name = cx.doc().qname(c).to_string();
        if cx.doc().namespace(c) == Some(QEMU_NS) {
            let args: Vec<String> =
                cx.doc().descendants(c).into_iter().skip(1).filter_map(|a| describe(cx.doc(), a)).collect();
            let dropped = if args.is_empty() { String::new() } else { format!(": {}", args.join(" ")) };
            cx.remove_warn(
                c,
                format!("<{name}>: QEMU-specific, libxl does not read it"),
                format!("the QEMU settings it carried are dropped{dropped}"),
            );
        } else if cx.doc().namespace(c).is_some() {
            continue;
        } else if IGNORED.contains(&name.as_str()) {
            cx.remove(c, format!("<{name}>: libxl ignores it"));
        } else if name == "cputune" {
            let kids: Vec<_> = cx.doc().children(c).collect();
            for k in kids {
                let kn = cx.doc().qname(k).to_string();
                if kn != "shares" && kn != "vcpupin" {
                    cx.remove(k, format!("<{kn}>: libxl applies only <shares> and <vcpupin>"));
                }
            }
        } else if name == "seclabel" && cx.doc().attr(c, "type") == Some("dynamic") {
            let model = cx.doc().attr(c, "model").unwrap_or("").to_string();
            if model == "selinux" {
                cx.warn(cx.doc().path(c), "Xen does not confine the device model with sVirt labels: the SELinux label is kept but not applied");
            }
        } else if name == "launchSecurity" {
            cx.refuse(
                cx.doc().path(c),
                "<launchSecurity> (SEV/TDX memory encryption): libxl cannot run confidential guests",
            );
        }
    }
}

/// One QEMU setting in words: `-s`, `SPICE_DEBUG_ALLOW_MC=1`, `del usb-redir.filter`.
fn describe(doc: &crate::doc::Document, e: crate::doc::El) -> Option<String> {
    let attr = |n: &str| doc.attr(e, n).map(str::to_string);
    match (attr("name"), attr("value"), attr("capability")) {
        (Some(n), Some(v), _) => Some(format!("{n}={v}")),
        (None, Some(v), _) => Some(v),
        (_, _, Some(cap)) => Some(format!("{} {cap}", doc.local(e))),
        _ => {
            let attrs: Vec<String> = doc.attrs(e).map(|(k, v)| format!("{k}={v}")).collect();
            (!attrs.is_empty()).then(|| format!("{} {}", doc.local(e), attrs.join(" ")))
        }
    }
}
