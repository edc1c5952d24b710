//! `annotate-provenance`: a marker in `<metadata>`, in xenify's own
//! namespace (libvirt keeps one element per namespace), naming the version
//! and the passes that changed something. A run that changes nothing else
//! adds or updates nothing, so the pipeline stays idempotent.
//!
//! `<metadata>…</metadata>` → `<metadata>…<xenify:converted xmlns:xenify='…' version='0.1.0' passes='…'/></metadata>`

use super::{Cx, Pass, ALL};
use crate::doc::{At, NewEl};

pub const PASS: Pass = Pass {
    name: "annotate-provenance",
    summary: "record the version and the passes that changed something in <metadata><xenify:converted>",
    run,
};

pub const NAMESPACE: &str = "https://github.com/xenify/xenify/ns/converted/1";

fn run(cx: &mut Cx) {
    let Some(domain) = cx.domain() else { return };
    let mut changed: Vec<&str> = Vec::new();
    for f in cx.earlier() {
        if f.kind.is_edit() && !changed.contains(&f.pass) {
            changed.push(f.pass);
        }
    }
    if changed.is_empty() {
        return;
    }
    let version = env!("CARGO_PKG_VERSION");
    let metadata = cx.doc().child(domain, "metadata");
    let marker = metadata.and_then(|m| {
        cx.doc().children(m).find(|c| cx.doc().namespace(*c) == Some(NAMESPACE) && cx.doc().local(*c) == "converted")
    });
    if let Some(marker) = marker {
        let before: Vec<String> =
            cx.doc().attr(marker, "passes").unwrap_or("").split_whitespace().map(str::to_string).collect();
        let passes = in_pipeline_order(|name| changed.contains(&name) || before.iter().any(|b| b == name));
        cx.set_attr(marker, "passes", &passes, "the passes that have changed this domain");
        cx.set_attr(marker, "version", version, "the xenify version that converted it last");
        return;
    }
    let passes = in_pipeline_order(|name| changed.contains(&name));
    let new =
        NewEl::new("xenify:converted").attr("xmlns:xenify", NAMESPACE).attr("version", version).attr("passes", &passes);
    let metadata = match metadata {
        Some(m) => m,
        None => {
            let anchor = ["uuid", "name"].iter().find_map(|n| cx.doc().child(domain, n));
            let at = anchor.map_or(At::First, At::After);
            cx.add(domain, at, NewEl::new("metadata"), "to hold xenify's conversion marker")
        }
    };
    cx.add(metadata, At::Last, new, &format!("conversion marker: xenify {version}, passes {passes}"));
}

fn in_pipeline_order(keep: impl Fn(&str) -> bool) -> String {
    ALL.iter().map(|p| p.name).filter(|n| keep(n)).collect::<Vec<_>>().join(" ")
}
