//! `graphics-to-xen`: the console. libxl does not resolve `<listen
//! type='network'>` and silently listens on 127.0.0.1 (the field report's
//! "connection refused from outside dom0"), so every listen gets an explicit
//! address; it enables only one of SPICE and VNC on HVM; and it ignores SPICE
//! TLS and ticket expiry, which go only as the accepted loss
//! `graphics-security`.
//!
//! `<listen type='network' network='vdsm-ovirtmgmt'/>` → `<listen type='address' address='192.0.2.10'/>`

use super::{Cx, Pass};
use crate::doc::{At, El, NewEl};
use crate::policy::Loss;

pub const PASS: Pass = Pass {
    name: "graphics-to-xen",
    summary:
        "explicit listen addresses (no IPv6 for VNC), SPICE and VNC kept on HVM, console TLS and ticket expiry only as the accepted loss graphics-security",
    run,
};

/// The password Vdsm writes, with an expiry in 1970, for a console that
/// nobody may open until the engine sets a ticket.
const VDSM_LOCKED_PASSWORD: &str = "*****";

/// Children of `<graphics type='spice'>` that VNC does not have.
const SPICE_ONLY: &[&str] =
    &["channel", "image", "jpeg", "zlib", "playback", "streaming", "clipboard", "mouse", "filetransfer", "gl"];

fn run(cx: &mut Cx) {
    let mut kept: Vec<El> = Vec::new();
    for g in cx.devices_named("graphics") {
        let ty = cx.doc().attr(g, "type").unwrap_or("").to_string();
        let same = kept.iter().copied().find(|k| cx.doc().attr(*k, "type") == Some(ty.as_str()));
        if !matches!(ty.as_str(), "vnc" | "spice" | "sdl") {
            cx.remove_warn(
                g,
                format!("<graphics type='{ty}'>: libvirt's libxl driver rejects it (or, for dbus and egl-headless, aborts the daemon)"),
                format!("the guest has no {ty} display"),
            );
        } else if let Some(first) = kept.first().copied().filter(|_| cx.pvh() || same.is_some()) {
            let first_ty = cx.doc().attr(first, "type").unwrap_or("").to_string();
            let why = if same.is_some() {
                format!("second {ty} console: libxl enables only the first")
            } else {
                format!("second console <graphics type='{ty}'>: libxl would give a PVH guest a second framebuffer, which it did not have")
            };
            cx.remove_warn(
                g,
                why,
                format!("the console is {first_ty} only, and after a restart Vdsm tracks that one console"),
            );
        } else {
            kept.push(g);
        }
    }
    // On HVM libxl enables SPICE when there is one, else VNC or SDL. A
    // console it leaves off stays, secured like the other, because Vdsm and
    // the engine track both (Vdsm rebuilds its graphics devices from
    // libvirt's XML after a restart).
    let spice = kept.iter().copied().find(|g| cx.doc().attr(*g, "type") == Some("spice"));
    for g in kept {
        security(cx, g);
        let is_spice = cx.doc().attr(g, "type") == Some("spice");
        if is_spice && cx.pvh() {
            cx.set_attr(g, "type", "vnc", "libxl gives PVH guests no SPICE display");
            cx.remove_children(g, SPICE_ONLY, "is a SPICE setting");
            cx.remove_attrs(g, &["defaultMode"], "is a SPICE setting");
        } else if is_spice {
            clipboard(cx, g);
        } else if spice.is_some() && !cx.pvh() {
            let ty = cx.doc().attr(g, "type").unwrap_or("").to_string();
            cx.warn(
                cx.doc().path(g),
                format!("libxl enables only the SPICE console when an HVM guest has both: this {ty} console is kept so that Vdsm and the engine still track it, but it does not listen"),
            );
        }
        listens(cx, g);
        vnc_ipv6(cx, g);
    }
}

/// libxl reads a `:` in a VNC listen address as "host:display" and then
/// refuses it or hands qemu a display it did not mean, so an IPv6 VNC
/// address becomes the policy's graphics_listen when that has no `:`, and
/// is refused otherwise.
fn vnc_ipv6(cx: &mut Cx, g: El) {
    if cx.doc().attr(g, "type") != Some("vnc") {
        return;
    }
    let fallback = cx.policy.graphics_listen.clone().filter(|a| !a.contains(':'));
    let listens: Vec<El> = cx.doc().children_named(g, "listen").collect();
    let mut holders: Vec<(El, Option<String>)> = vec![(g, None)];
    holders.extend(listens.into_iter().map(|l| (l, Some("address".to_string()))));
    for (e, attr) in holders {
        let name = attr.as_deref().unwrap_or("listen");
        let Some(address) = cx.doc().attr(e, name).map(str::to_string).filter(|a| a.contains(':')) else {
            continue;
        };
        match &fallback {
            Some(v4) => {
                cx.set_attr(e, name, v4, "libxl reads a ':' in a VNC listen address as host:display; the policy's graphics_listen is used instead");
            }
            None => cx.refuse(
                cx.doc().attr_path(e, name),
                format!("VNC listen address '{address}' is IPv6: libxl reads a ':' in it as host:display and would listen elsewhere or fail; set graphics_listen in the policy to an IPv4 address (or 0.0.0.0) for this console"),
            ),
        }
    }
}

/// TLS and ticket expiry: controls libxl ignores.
fn security(cx: &mut Cx, g: El) {
    let doc = cx.doc();
    let mut settings = Vec::new();
    if doc.attr(g, "tlsPort").is_some() {
        settings.push("TLS port");
    }
    if doc.attr(g, "defaultMode") == Some("secure") {
        settings.push("defaultMode='secure'");
    }
    let secure_channels: Vec<El> =
        doc.children_named(g, "channel").filter(|c| doc.attr(*c, "mode") == Some("secure")).collect();
    if !secure_channels.is_empty() {
        settings.push("secure channels");
    }
    if doc.attr(g, "passwdValidTo").is_some() {
        settings.push("ticket expiry (passwdValidTo)");
    }
    if settings.is_empty() {
        return;
    }
    let ty = doc.attr(g, "type").unwrap_or("").to_string();
    let path = doc.path(g);
    let what = format!("{ty} console security ({}) cannot be enforced by Xen (libxl ignores it)", settings.join(", "));
    if !cx.loss(path.clone(), Loss::GraphicsSecurity, what) {
        return;
    }
    cx.remove_attr(g, "tlsPort", "is ignored by libxl: no TLS");
    if cx.doc().attr(g, "defaultMode") == Some("secure") {
        cx.remove_attr(g, "defaultMode", "is ignored by libxl: no TLS");
    }
    for c in secure_channels {
        let name = cx.doc().attr(c, "name").unwrap_or("?").to_string();
        cx.remove(c, format!("secure SPICE channel '{name}': libxl ignores it, there is no TLS"));
    }
    let placeholder =
        cx.doc().attr(g, "passwd") == Some(VDSM_LOCKED_PASSWORD) && cx.doc().attr(g, "passwdValidTo").is_some();
    cx.remove_attr(g, "passwdValidTo", "is ignored by libxl: the console password never expires");
    cx.accepted(
        path.clone(),
        Loss::GraphicsSecurity,
        "console traffic is unencrypted and its password does not expire",
    );
    if placeholder {
        cx.warn(
            path,
            format!("the password is Vdsm's placeholder '{VDSM_LOCKED_PASSWORD}', which kept the console locked until the engine set a ticket; on Xen it never expires, and no ticket can be set (libxl cannot update a running console): anyone who reaches the console port can log in with '{VDSM_LOCKED_PASSWORD}': let only administrators reach it (a firewall on the host)"),
        );
    }
}

/// A kept SPICE console gets its agent (which the removed spicevmc channel
/// gave it on KVM) from `<clipboard copypaste='yes'/>`.
fn clipboard(cx: &mut Cx, g: El) {
    let doc = cx.doc();
    if doc.child(g, "clipboard").is_some() {
        return;
    }
    let had_agent = cx
        .all("devices")
        .into_iter()
        .flat_map(|devices| doc.children_in_input(devices))
        .any(|c| doc.is(c, "channel") && doc.attr(c, "type") == Some("spicevmc"));
    if had_agent {
        cx.add(
            g,
            At::Last,
            NewEl::new("clipboard").attr("copypaste", "yes"),
            "libxl adds the SPICE agent (vdagent) for it, replacing the spicevmc channel",
        );
    }
}

fn listens(cx: &mut Cx, g: El) {
    let listens: Vec<El> = cx.doc().children_named(g, "listen").collect();
    for (i, l) in listens.iter().copied().enumerate() {
        let ty = cx.doc().attr(l, "type").unwrap_or("address").to_string();
        match ty.as_str() {
            "network" => {
                let address = listen_address(cx, l);
                cx.set_attr(
                    l,
                    "type",
                    "address",
                    "libxl does not resolve network listens and would listen on 127.0.0.1",
                );
                cx.set_attr(l, "address", &address, "the address the console listens on, written out");
                cx.remove_attr(l, "network", "is resolved to its address");
            }
            "socket" | "none" => {
                cx.set_attr(l, "type", "address", "libxl listens on an address only");
                cx.remove_attr(l, "socket", "is rejected by libvirt on an address listen");
                if cx.doc().attr(l, "address").is_none() {
                    cx.set_attr(l, "address", "127.0.0.1", "the console stays local to the host, as it was");
                }
            }
            _ => {}
        }
        if i == 0 {
            let first = cx.doc().attr(l, "address").map(str::to_string);
            if let (Some(first), Some(attr)) = (first, cx.doc().attr(g, "listen")) {
                if attr != first {
                    cx.set_attr(g, "listen", &first, "libvirt requires it to equal the first listen's address");
                }
            }
        }
    }
}

/// The listen's own address (live dumps carry it), else the IPv4 address of
/// the Vdsm network's bridge on this host, else the policy's, else 0.0.0.0.
fn listen_address(cx: &mut Cx, l: El) -> String {
    if let Some(a) = cx.doc().attr(l, "address").filter(|a| !a.is_empty()) {
        return a.to_string();
    }
    let network = cx.doc().attr(l, "network").unwrap_or("").to_string();
    if let Some(ip) = network.strip_prefix("vdsm-").and_then(|b| cx.host.bridge_ipv4(b)) {
        return ip.to_string();
    }
    if let Some(a) = cx.policy.graphics_listen.clone() {
        return a;
    }
    cx.warn(
        cx.doc().path(l),
        format!("no address known for network '{network}' on this host and no graphics_listen in the policy: the console listens on every address of the host (0.0.0.0)"),
    );
    "0.0.0.0".to_string()
}
