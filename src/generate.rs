//! Files derived from the program itself, so they cannot drift from it:
//! the man pages (from the clap definition, the policy keys and the loss
//! ids) and the shell completions. `make install` and the RPM call
//! `xenify generate man|completions DIR`; nothing here runs at conversion.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;
use xenify::policy::{capitalise, KEYS, MERGE_RULE};
use xenify::Loss;

use crate::cli::Cli;
use crate::hook::{self, DEFAULT_CONFIG, HOOKS_DIR};

const MANUAL: &str = "xenify manual";

fn source() -> String {
    format!("xenify {}", env!("CARGO_PKG_VERSION"))
}

/// Writes xenify.1, xenify-<subcommand>.1 for each visible subcommand, and
/// xenify.toml.5 into `dir`.
pub fn man(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let subcommands: Vec<clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let names: Vec<String> = subcommands.iter().map(|s| format!("xenify-{}", s.get_name())).collect();
    write_page(dir, "xenify.1", |w| {
        let man = Man::new(cmd.clone()).source(source()).manual(MANUAL);
        man.render_title(w)?;
        man.render_name_section(w)?;
        synopsis(&cmd, "xenify").to_writer(w)?;
        man.render_description_section(w)?;
        man.render_options_section(w)?;
        man.render_subcommands_section(w)?;
        top_sections(&names).to_writer(w)?;
        man.render_version_section(w)
    })?;
    for sub in subcommands {
        let name = format!("xenify-{}", sub.get_name());
        let page = format!("{name}.1");
        let extra = sub_sections(sub.get_name());
        write_page(dir, &page, |w| {
            let man = Man::new(sub.clone()).title(name.to_uppercase()).source(source()).manual(MANUAL);
            man.render_title(w)?;
            man.render_name_section(w)?;
            synopsis(&sub, &format!("xenify {}", sub.get_name())).to_writer(w)?;
            man.render_description_section(w)?;
            man.render_options_section(w)?;
            extra.to_writer(w)
        })?;
    }
    write_page(dir, "xenify.toml.5", |w| config_page().to_writer(w))
}

/// The SYNOPSIS with each option's value name (`[--only PASS,…]`), which
/// clap_mangen's own synopsis leaves out.
fn synopsis(cmd: &clap::Command, name: &str) -> Roff {
    let mut r = Roff::new();
    section(&mut r, "SYNOPSIS");
    let mut line = vec![bold(name)];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()) {
        let (open, close) = if arg.is_required_set() { ("", "") } else { ("[", "]") };
        line.push(roman(format!(" {open}")));
        match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => line.extend([bold(format!("-{s}")), roman("|"), bold(format!("--{l}"))]),
            (Some(s), None) => line.push(bold(format!("-{s}"))),
            (None, Some(l)) => line.push(bold(format!("--{l}"))),
            (None, None) => {}
        }
        if arg.get_action().takes_values() {
            let value = arg.get_value_names().map_or(arg.get_id().to_string(), |v| v.join(" "));
            line.extend([roman(" "), italic(value)]);
        }
        line.push(roman(close));
    }
    for arg in cmd.get_positionals() {
        let value = arg.get_value_names().map_or(arg.get_id().to_string(), |v| v.join(" "));
        let more = if matches!(arg.get_action(), clap::ArgAction::Append) { "…" } else { "" };
        if arg.is_required_set() {
            line.extend([roman(" "), italic(value), roman(more)]);
        } else {
            line.extend([roman(" ["), italic(value), roman(format!("]{more}"))]);
        }
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        line.extend([roman(" "), italic("COMMAND")]);
    }
    r.text(line);
    r
}

fn write_page(dir: &Path, name: &str, render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let path = dir.join(name);
    let mut out = Vec::new();
    render(&mut out)?;
    fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
}

fn section(r: &mut Roff, title: &str) {
    r.control("SH", [title]);
}

fn para(r: &mut Roff, text: &str) {
    r.control("PP", []).text([roman(text)]);
}

fn item(r: &mut Roff, term: &str, text: &str) {
    r.control("TP", []).text([bold(term)]).text([roman(text)]);
}

fn see_also(r: &mut Roff, pages: &[&str]) {
    section(r, "SEE ALSO");
    let mut inlines = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, sect) = page.split_once('(').unwrap_or((page, ""));
        inlines.push(bold(name));
        inlines.push(roman(format!("({}{}", sect, if i + 1 < pages.len() { ", " } else { "" })));
    }
    r.text(inlines);
}

const EXIT_STATUS: [(&str, &str); 3] = [
    ("0", "Converted (warnings allowed); for check and doctor, every file converts or every check passes."),
    ("1", "Refused: the document uses a control Xen cannot honour and the policy does not accept its loss; for check and doctor, some file or check did not pass."),
    ("2", "Usage, I/O or parse error; for check, also nothing to check. Nothing is written unless the exit status is 0. The hook uses only 0 and 2 (see xenify-hook(1)), because Vdsm lets later hooks run after a 1."),
];

fn exit_status(r: &mut Roff) {
    section(r, "EXIT STATUS");
    for (code, text) in EXIT_STATUS {
        item(r, code, text);
    }
}

fn top_sections(subpages: &[String]) -> Roff {
    let mut r = Roff::new();
    exit_status(&mut r);
    section(&mut r, "ENVIRONMENT");
    item(&mut r, "_hook_domxml", "Set by Vdsm: the file holding the domain or device XML. With it set and no arguments, xenify runs as the hook (see xenify-hook(1)).");
    item(&mut r, "XENIFY_CONFIG", "The policy file the hook reads instead of the default.");
    item(
        &mut r,
        "xenify_<key>",
        "Set by Vdsm from a VM custom property of that name: overrides a policy key for one VM (see xenify.toml(5)).",
    );
    section(&mut r, "FILES");
    item(&mut r, DEFAULT_CONFIG, "The policy: see xenify.toml(5).");
    let points: Vec<&str> = hook::POINTS.iter().map(|p| p.name).collect();
    item(
        &mut r,
        &format!("{HOOKS_DIR}/POINT/{}", hook::LINK_NAME),
        &format!("Links to xenify, for POINT in {}; the hook point is the name of the directory.", points.join(", ")),
    );
    let pages: Vec<String> = subpages.iter().map(|p| format!("{p}(1)")).collect();
    let mut all: Vec<&str> = pages.iter().map(|s| s.as_str()).collect();
    all.extend(["xenify.toml(5)", "vdsmd(8)", "xl(1)"]);
    see_also(&mut r, &all);
    r
}

/// The hook's exit codes (hook.rs): at the domain and device points Vdsm
/// reads 1 as "go on with the next hook" and reserves codes above 2, so
/// xenify uses 0 and 2 there; at the JSON points Vdsm uses the file whatever
/// the hook exits with, so an error there exits 1.
const HOOK_EXIT_STATUS: [(&str, &str); 3] = [
    ("0", "Converted: the file is replaced with the conversion, or left as it was when nothing changed (at a JSON point: the file is changed, or left alone on a host that is not a Xen dom0)."),
    ("1", "Only at the JSON points (after_get_caps, after_get_stats): an error; the file is as Vdsm wrote it, Vdsm logs the error and later hooks still run."),
    ("2", "At the domain and device points: refused, or any error (unreadable file, malformed XML, a bad policy); the file is byte-identical to what Vdsm wrote, Vdsm skips the later hooks and aborts the action, and the first line on stderr, which the engine shows, says why. There the hook never exits with 1, which would let later hooks run on a domain xenify refused, nor above 2, which Vdsm reserves."),
];

fn sub_sections(name: &str) -> Roff {
    let mut r = Roff::new();
    match name {
        "hook" => {
            section(&mut r, "HOOK POINTS");
            para(&mut r, &format!("Vdsm runs every executable in {HOOKS_DIR}/POINT/ in the lexical order of their names. xenify tells the point from the name of the directory it was started from, and reads what that point hands it: the whole domain at before_vm_start, one device element at the others."));
            for p in &hook::POINTS {
                item(&mut r, p.name, p.doc);
            }
            para(&mut r, &format!("At the JSON points Vdsm names a JSON file in ${} instead; xenify changes it only on a Xen dom0 (host files under ${}, default /; xl info from PATH, through sudo -n for a user other than root), and exits 1 on an error, leaving the file as Vdsm wrote it.", hook::JSON_VAR, crate::caps::ROOT_VAR));
            for p in &hook::JSON_POINTS {
                item(&mut r, p.name, p.doc);
            }
            section(&mut r, "POLICY");
            para(&mut r, &format!("The hook reads the policy file ({DEFAULT_CONFIG}, or the file $XENIFY_CONFIG names), then the VM's custom properties xenify_KEY from its environment. {}", MERGE_RULE));
            section(&mut r, "EXIT STATUS");
            for (code, text) in HOOK_EXIT_STATUS {
                item(&mut r, code, text);
            }
        }
        "doctor" => {
            section(&mut r, "EXIT STATUS");
            item(&mut r, "0", "Every check passed.");
            item(&mut r, "1", "Some check failed; its line says what to do.");
            item(&mut r, "2", "The checks could not run: a usage error, or the root given with --root does not exist.");
        }
        "passes" => {}
        _ => exit_status(&mut r),
    }
    see_also(&mut r, &["xenify(1)", "xenify.toml(5)"]);
    r
}

/// xenify.toml(5): every key with its values and default, and every loss id
/// with what accepting it costs, from the same tables as the parser.
fn config_page() -> Roff {
    let mut r = Roff::new();
    let version = source();
    r.control("TH", ["XENIFY.TOML", "5", "", version.as_str(), MANUAL]);
    section(&mut r, "NAME");
    r.text([roman("xenify.toml - the xenify policy file")]);
    section(&mut r, "SYNOPSIS");
    r.text([bold(DEFAULT_CONFIG)]);
    section(&mut r, "DESCRIPTION");
    para(&mut r, "The policy says what xenify may do when it converts an oVirt VM for Xen: which kind of guest to build, what virtio NICs become, and which security or isolation controls the administrator accepts losing. It is a TOML file of top-level keys; every key is optional, and an unknown key, a wrong type or a bad value is an error naming the key and the file.");
    para(&mut r, "The Vdsm hook and xenify check read this file, or the file named by the environment variable XENIFY_CONFIG; a missing default file means the defaults. For one VM, a custom property named xenify_KEY (for example xenify_guest=pvh, or xenify_accept=nwfilter,vlan) sets a key; Vdsm passes custom properties to hooks as environment variables, and xenify check reads them from the domain's <ovirt-vm:custom> metadata. On the command line, --config FILE reads a file, and --set KEY=VALUE and --accept ID set keys.");
    para(&mut r, MERGE_RULE);
    section(&mut r, "KEYS");
    for k in KEYS {
        r.control("TP", []).text([bold(k.name), roman(" = "), italic(k.values)]);
        r.text([roman(format!("{}. Default: {}.", capitalise(k.doc), k.default.trim_matches(['(', ')'])))]);
    }
    section(&mut r, "LOSS IDS");
    para(&mut r, "xenify never quietly weakens a control Xen cannot honour: a domain that uses one is refused, naming the loss id that accepts the loss. Accepting an id (accept = [\"ID\", ...]) lets the conversion drop the control and report it.");
    for l in Loss::ALL {
        item(&mut r, l.id(), &format!("{}.", capitalise(l.consequence())));
    }
    section(&mut r, "EXAMPLE");
    r.control("nf", []);
    for line in ["guest = \"hvm\"", "nic_model = \"e1000\"", "accept = [\"nwfilter\", \"graphics-security\"]"] {
        r.text([roman(line)]);
    }
    r.control("fi", []);
    section(&mut r, "FILES");
    item(&mut r, DEFAULT_CONFIG, "The policy the hook reads. The shipped file lists every key, commented out at its default; an upgrade keeps an edited file.");
    see_also(&mut r, &["xenify(1)", "xenify-hook(1)", "xenify-doctor(1)"]);
    r
}

/// The command line as users see it: clap_complete offers hidden
/// subcommands too, so `generate` (for packaging) is left out here.
fn visible() -> clap::Command {
    let cmd = Cli::command();
    let subcommands: Vec<clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut visible = clap::Command::new("xenify").version(env!("CARGO_PKG_VERSION")).subcommand_required(true);
    if let Some(a) = cmd.get_about() {
        visible = visible.about(a.clone());
    }
    visible.subcommands(subcommands)
}

/// Writes xenify.bash, _xenify (zsh) and xenify.fish into `dir`.
pub fn completions(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut visible(), "xenify", dir)
            .with_context(|| format!("cannot write the {shell} completion into {}", dir.display()))?;
    }
    Ok(())
}
