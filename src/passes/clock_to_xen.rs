//! `clock-to-xen`: timers. libvirt rejects `rtc`, `pit`, `kvmclock`,
//! `hypervclock` and `platform` timers on Xen ("unsupported timer type"),
//! and Vdsm always writes `rtc` and `pit`; `hpet present='no'` is ignored
//! (HPET stays on). The offset is kept where libxl supports it.
//!
//! `<clock offset='variable'><timer name='rtc' tickpolicy='catchup'/></clock>` → `<clock offset='variable'/>`

use super::{Cx, Pass};

pub const PASS: Pass = Pass {
    name: "clock-to-xen",
    summary: "drop rtc/pit/kvmclock/hypervclock timers, refuse clock offsets libxl rejects",
    run,
};

const REJECTED: &[&str] = &["rtc", "pit", "kvmclock", "hypervclock", "platform", "armvtimer"];

fn run(cx: &mut Cx) {
    let Some(domain) = cx.domain() else { return };
    let Some(clock) = cx.doc().child(domain, "clock") else {
        return;
    };
    match cx.doc().attr(clock, "offset") {
        Some(o @ ("timezone" | "absolute")) => {
            let message = format!(
                "clock offset='{o}' is rejected by libvirt's libxl driver and has no honest Xen equivalent; use 'utc', 'localtime' or 'variable'"
            );
            cx.refuse(cx.doc().attr_path(clock, "offset"), message);
        }
        _ => {}
    }
    let timers: Vec<_> = cx.doc().children_named(clock, "timer").collect();
    for t in timers {
        let name = cx.doc().attr(t, "name").unwrap_or("").to_string();
        if cx.pvh() && name != "tsc" {
            cx.remove(t, format!("timer '{name}': a PVH guest has no emulated timers but the TSC"));
        } else if REJECTED.contains(&name.as_str()) {
            cx.remove(t, format!("timer '{name}': libvirt rejects it on Xen (\"unsupported timer type\")"));
        } else if name == "hpet" && cx.doc().attr(t, "present") == Some("no") {
            cx.remove_warn(
                t,
                "timer 'hpet' present='no': libxl ignores it",
                "the guest gets an HPET after all (libxl's HVM default)",
            );
        }
    }
}
