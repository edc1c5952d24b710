//! `remove-virtio-serial`: Xen has no virtio-serial. libvirt rejects
//! channels with a virtio target at start, so guest-agent channels become
//! Xen PV channels on the same host socket (the policy's `agent_channels`),
//! SPICE agent channels go (SPICE gets its agent from `<clipboard>`), and
//! character devices whose source libxl cannot open are removed.
//!
//! `<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>` →
//! `<channel type='unix'><target type='xen' name='org.qemu.guest_agent.0'/>`

use super::{Cx, Pass};
use crate::doc::{At, El, NewEl};
use crate::policy::AgentChannels;

pub const PASS: Pass = Pass {
    name: "remove-virtio-serial",
    summary: "drop the untracked virtio-serial controller, guest-agent channels → Xen PV channels, drop SPICE agent channels and virtio consoles",
    run,
};

const AGENTS: &[&str] =
    &["org.qemu.guest_agent.0", "ovirt-guest-agent.0", "com.redhat.rhevm.vdsm", "org.ovirt.hosted-engine-setup.0"];

/// Character device sources libxl cannot open ("unsupported chardev").
const UNOPENABLE: &[&str] = &["spiceport", "spicevmc", "dbus", "qemu-vdagent", "nmdm"];

fn run(cx: &mut Cx) {
    for c in cx.devices_named("controller") {
        if cx.doc().attr(c, "type") == Some("virtio-serial") && !cx.keep_tracked(c, None) {
            cx.remove(c, "virtio-serial controller: Xen has no virtio-serial");
        }
    }
    for dev in cx.devices() {
        let name = cx.doc().qname(dev).to_string();
        if !matches!(name.as_str(), "channel" | "console" | "serial") {
            continue;
        }
        let src = cx.doc().attr(dev, "type").unwrap_or("pty").to_string();
        let target = cx.doc().child(dev, "target");
        let ttype = target.and_then(|t| cx.doc().attr(t, "type")).unwrap_or("").to_string();
        if name == "channel" && src == "spicevmc" {
            cx.remove(
                dev,
                "SPICE agent channel (spicevmc): Xen has no virtio-serial; a SPICE console that is kept gets its agent from <clipboard> instead",
            );
        } else if UNOPENABLE.contains(&src.as_str()) {
            cx.remove_warn(
                dev,
                format!("<{name} type='{src}'>: libxl cannot open this source (\"unsupported chardev\")"),
                format!("the guest loses this {name} ({src})"),
            );
        } else if name == "channel" {
            channel(cx, dev, target, &ttype, &src);
        } else if name == "console" && ttype == "virtio" {
            if src == "unix" {
                let socket = socket(cx, dev).unwrap_or_default();
                let consequence = format!("the console on {socket} (ovirt-vmconsole) is gone; only a <serial> console reaches a Xen HVM guest");
                if !cx.keep_tracked(dev, Some(&consequence)) {
                    cx.remove_warn(dev, "virtio console: libxl builds no virtio consoles", consequence);
                }
            } else if cx.keep_tracked(dev, Some("libxl builds no virtio consoles")) {
            } else {
                cx.remove(dev, "virtio console: libxl builds no virtio consoles");
            }
        } else {
            tls_warning(cx, dev);
        }
    }
    if cx.pvh() {
        pvh_console(cx);
    } else {
        serial_console_alias(cx);
    }
}

/// libvirt keeps the first `<console>` on a serial target only as a copy of
/// the first `<serial>`, with the serial's alias: the engine's alias on the
/// console (the ovirt-vmconsole console) is kept by giving it to the serial
/// too, when that has none.
fn serial_console_alias(cx: &mut Cx) {
    let doc = cx.doc();
    let devices = cx.devices();
    let Some(console) = devices.iter().copied().find(|d| doc.is(*d, "console")) else {
        return;
    };
    let on_serial = doc.child(console, "target").and_then(|t| doc.attr(t, "type")).is_none_or(|t| t == "serial");
    let serial = devices.iter().copied().find(|d| doc.is(*d, "serial"));
    let (Some(alias), Some(serial), true) = (cx.user_alias(console), serial, on_serial) else {
        return;
    };
    if doc.child(serial, "alias").is_some() {
        return;
    }
    cx.add(
        serial,
        At::Last,
        NewEl::new("alias").attr("name", &alias),
        "the console's alias: libvirt keeps a console on serial 0 as a copy of the serial, with the serial's alias, and the engine tracks the console by it",
    );
}

fn channel(cx: &mut Cx, dev: El, target: Option<El>, ttype: &str, src: &str) {
    match (target, ttype) {
        (Some(t), "xen") => socket_path(cx, dev, t, src),
        (Some(t), "virtio") if matches!(src, "unix" | "pty") => {
            let name = cx.doc().attr(t, "name").unwrap_or("").to_string();
            let agent = AGENTS.contains(&name.as_str()) || src == "unix";
            if !agent {
                cx.remove_warn(
                    dev,
                    format!("virtio channel '{name}': Xen has no virtio-serial"),
                    format!("the guest loses channel '{name}'"),
                );
            } else if cx.policy.agent_channels == AgentChannels::Drop {
                cx.remove_warn(
                    dev,
                    format!("guest-agent channel '{name}' (policy agent_channels = \"drop\")"),
                    format!("Vdsm cannot talk to the agent on '{name}'"),
                );
            } else {
                cx.set_attr(
                    t,
                    "type",
                    "xen",
                    "a Xen PV channel on the same host socket; the guest agent must use the Xen PV console device",
                );
                cx.remove_attr(t, "state", "is reported by qemu for virtio channels only");
                cx.remove_children(dev, &["address"], "(virtio-serial port): Xen channels have none");
                socket_path(cx, dev, t, src);
            }
        }
        _ => {
            let what = if ttype.is_empty() {
                "a channel without a target".to_string()
            } else {
                format!("channel target type '{ttype}'")
            };
            cx.remove_warn(
                dev,
                format!("{what} with a {src} source: libvirt's libxl driver supports Xen PV channels on pty or unix sources only"),
                "the guest loses this channel",
            );
        }
    }
}

fn tls_warning(cx: &mut Cx, dev: El) {
    if cx.doc().attr(dev, "type") != Some("tcp") {
        return;
    }
    if let Some(s) = cx.doc().child(dev, "source").filter(|s| cx.doc().attr(*s, "tls") == Some("yes")) {
        cx.warn(cx.doc().attr_path(s, "tls"), "libxl ignores TLS on TCP character devices: the stream is unencrypted");
    }
}

/// A PVH guest has exactly one console, the Xen PV console.
fn pvh_console(cx: &mut Cx) {
    let Some(domain) = cx.domain() else { return };
    let Some(devices) = cx.doc().child(domain, "devices") else {
        return;
    };
    let mut has_pv_console = false;
    for dev in cx.devices() {
        let name = cx.doc().qname(dev).to_string();
        let target_type = cx.doc().child(dev, "target").and_then(|t| cx.doc().attr(t, "type")).map(str::to_string);
        let pv = name == "console" && target_type.as_deref() == Some("xen") && !has_pv_console;
        if pv {
            has_pv_console = true;
        } else if name == "serial" || name == "console" {
            let why = format!("<{name}>: a PVH guest has only the Xen PV console");
            match socket(cx, dev) {
                Some(socket) => cx.remove_warn(
                    dev,
                    why,
                    format!("the console on {socket} (ovirt-vmconsole) is gone; use `xl console` or virsh console on the host"),
                ),
                None => cx.remove(dev, why),
            }
        }
    }
    if !has_pv_console {
        let console =
            NewEl::new("console").attr("type", "pty").child(NewEl::new("target").attr("type", "xen").attr("port", "0"));
        cx.add(devices, At::Last, console, "the Xen PV console of a PVH guest");
    }
}

/// Where Vdsm keeps the host sockets of a VM's channels.
const CHANNELS_DIR: &str = "/var/lib/libvirt/qemu/channels";

/// A Xen channel on a unix socket needs the socket's path (xl: "channel
/// connection 'socket' requires path"); one without it gets the path Vdsm
/// uses, `<dir>/<vm uuid>.<channel name>`.
fn socket_path(cx: &mut Cx, dev: El, target: El, src: &str) {
    if src != "unix" || socket(cx, dev).is_some_and(|p| !p.is_empty()) {
        return;
    }
    let name = cx.doc().attr(target, "name").unwrap_or("").to_string();
    let uuid = cx
        .domain()
        .and_then(|d| cx.doc().child(d, "uuid"))
        .and_then(|u| cx.doc().text(u))
        .map(|u| u.trim().to_string());
    let (Some(uuid), false) = (uuid, name.is_empty()) else {
        cx.refuse(
            cx.doc().path(dev),
            "a unix channel without a socket path, whose path xenify cannot derive (it needs the VM's UUID and the channel's name): give the channel a <source path>",
        );
        return;
    };
    let path = format!("{CHANNELS_DIR}/{uuid}.{name}");
    let why = "the socket path Vdsm uses for the channel; xl refuses a socket channel without one";
    match cx.doc().child(dev, "source") {
        Some(s) => {
            cx.set_attr(s, "mode", "bind", "the host listens on the channel's socket");
            cx.set_attr(s, "path", &path, why);
        }
        None => {
            cx.add(dev, At::First, NewEl::new("source").attr("mode", "bind").attr("path", &path), why);
        }
    }
}

/// The host socket of a unix character device.
fn socket(cx: &Cx, dev: El) -> Option<String> {
    cx.doc().child(dev, "source").and_then(|s| cx.doc().attr(s, "path")).map(str::to_string)
}
