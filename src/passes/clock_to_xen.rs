//! `clock-to-xen`: timers. libvirt rejects `rtc`, `pit`, `kvmclock`,
//! `hypervclock` and `platform` timers on Xen ("unsupported timer type"),
//! and Vdsm always writes `rtc` and `pit`; `hpet present='no'` is ignored
//! (HPET stays on). The offset is kept where libxl supports it. A `tsc`
//! timer without a mode asks for libxl's default and its `frequency` is
//! ignored, so it goes (libvirt's xl export of it also upsets `xl`); a TSC
//! mode (`native`, `emulate`, `paravirt`) is kept, since libxl applies it.
//!
//! `<clock offset='variable'><timer name='rtc' tickpolicy='catchup'/></clock>` → `<clock offset='variable'/>`

use super::{Cx, Pass};
use crate::doc::El;

pub const PASS: Pass = Pass {
    name: "clock-to-xen",
    summary: "drop rtc/pit/kvmclock/hypervclock timers, refuse clock offsets libxl rejects",
    run,
};

const REJECTED: &[&str] = &["rtc", "pit", "kvmclock", "hypervclock", "platform", "armvtimer"];

fn run(cx: &mut Cx) {
    // libvirt reads the timers of every <clock> (`./clock/timer`).
    for clock in cx.all("clock") {
        convert(cx, clock);
    }
}

fn convert(cx: &mut Cx, clock: El) {
    if let Some(o @ ("timezone" | "absolute")) = cx.doc().attr(clock, "offset") {
        let message = format!(
            "clock offset='{o}' is rejected by libvirt's libxl driver and has no honest Xen equivalent; use 'utc', 'localtime' or 'variable'"
        );
        cx.refuse(cx.doc().attr_path(clock, "offset"), message);
    }
    // The engine writes a Windows guest's time zone as the adjustment, so
    // west of Greenwich it is negative. libvirt's libxl driver passes it to
    // libxl as is and the guest's clock is right; only libvirt's xl.cfg
    // export (`virsh domxml-to-native`) writes a negative number xl cannot
    // read. Refusing those guests would be worse than saying so.
    if cx.doc().attr(clock, "adjustment").and_then(|a| a.trim().parse::<i64>().ok()).is_some_and(|a| a < 0) {
        cx.warn(
            cx.doc().attr_path(clock, "adjustment"),
            "a negative clock adjustment: libvirt's libxl driver starts the guest with it, but the xl.cfg that `virsh domxml-to-native xen-xl` writes for this VM holds a negative rtc_timeoffset, which xl cannot read",
        );
    }
    let timers: Vec<_> = cx.doc().children_named(clock, "timer").collect();
    for t in timers {
        let name = cx.doc().attr(t, "name").unwrap_or("").to_string();
        if cx.pvh() && name != "tsc" {
            cx.remove(t, format!("timer '{name}': a PVH guest has no emulated timers but the TSC"));
        } else if REJECTED.contains(&name.as_str()) {
            cx.remove(t, format!("timer '{name}': libvirt rejects it on Xen (\"unsupported timer type\")"));
        } else if name == "tsc" && matches!(cx.doc().attr(t, "mode"), None | Some("auto" | "smpsafe")) {
            // libxl's default TSC mode; libxl ignores `frequency`.
            cx.remove(t, "timer 'tsc' without a mode: libxl uses its default TSC mode and ignores the frequency");
        } else if name == "hpet" && cx.doc().attr(t, "present") == Some("no") {
            cx.remove_warn(
                t,
                "timer 'hpet' present='no': libxl ignores it",
                "the guest gets an HPET after all (libxl's HVM default)",
            );
        }
    }
}
