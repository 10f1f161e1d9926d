//! docs/commands.md, the table of what the server supports against Redis 7.0.15, is kept
//! true by this test: it is rebuilt from the command table and Redis's metadata and must
//! equal the file. Regenerate with `TANDEM_REGENERATE=1 cargo nextest run -p tandem-server
//! --test command_support_doc`.

use tandem_server::commands::meta::META;
use tandem_server::commands::meta_types::{implemented, Meta};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/commands.md");

/// Commands a standalone, module-less Redis answers with an error too: served as Redis
/// serves them there (see commands/cluster.rs).
const STANDALONE_REFUSALS: &[&str] = &["asking", "cluster", "module", "readonly", "readwrite"];

fn served(m: &Meta) -> bool {
    tandem_server::commands::lookup(m.name.as_bytes()).is_some()
}

fn render() -> String {
    let top = META.len();
    let ours = META.iter().filter(|m| served(m)).count();
    let mut missing_top: Vec<&str> = META.iter().filter(|m| !served(m)).map(|m| m.name).collect();
    missing_top.sort_unstable();
    let mut subs_total = 0;
    let mut subs_ours = 0;
    let mut missing_subs = Vec::new();
    for m in META.iter().filter(|m| served(m)) {
        for s in m.subs {
            subs_total += 1;
            if implemented(s.name) {
                subs_ours += 1;
            } else {
                missing_subs.push(s.name);
            }
        }
    }
    let mut out = String::new();
    out.push_str("# Commands: what Tandem serves, against Redis 7.0.15\n\n");
    out.push_str(
        "Generated from the command table and Redis 7.0.15's `COMMAND INFO` \
         (server/src/commands/meta.rs) by `server/tests/command_support_doc.rs`, which \
         fails when this file is out of date.\n\n",
    );
    out.push_str(&format!(
        "Tandem serves **{ours} of the {top}** top-level commands of Redis 7.0.15, and \
         {subs_ours} of the {subs_total} subcommands of the containers it serves.\n\n"
    ));
    out.push_str(
        "`CLUSTER`, `ASKING`, `READONLY`, `READWRITE` and `MODULE` answer as a standalone, \
         module-less Redis does (cluster support disabled, no modules).\n\n",
    );
    out.push_str("## Not served yet\n\n");
    if missing_top.is_empty() {
        out.push_str("Every Redis 7.0.15 command is served.\n");
    } else {
        out.push_str("| command |\n|---|\n");
        for n in &missing_top {
            out.push_str(&format!("| `{}` |\n", n.to_uppercase()));
        }
    }
    if !missing_subs.is_empty() {
        out.push_str("\nSubcommands of served containers that are not served yet:\n\n");
        out.push_str("| subcommand |\n|---|\n");
        for n in &missing_subs {
            out.push_str(&format!("| `{}` |\n", n.to_uppercase().replace('|', " ")));
        }
    }
    out.push_str("\n## Served\n\n| command | flags |\n|---|---|\n");
    for m in META.iter().filter(|m| served(m)) {
        let note = if STANDALONE_REFUSALS.contains(&m.name) {
            " (standalone answer)".to_string()
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| `{}`{} | {} |\n",
            m.name.to_uppercase(),
            note,
            m.flags.join(", ")
        ));
    }
    out
}

#[test]
fn docs_commands_md_matches_the_command_table() {
    let want = render();
    if std::env::var_os("TANDEM_REGENERATE").is_some() {
        std::fs::write(DOC, &want).expect("write docs/commands.md");
        return;
    }
    let have = std::fs::read_to_string(DOC).unwrap_or_default();
    assert!(
        have == want,
        "docs/commands.md is stale: run `TANDEM_REGENERATE=1 cargo nextest run -p tandem-server --test command_support_doc`"
    );
}
