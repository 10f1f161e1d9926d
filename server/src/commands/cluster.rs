//! Command family: what a standalone, module-less Redis 7.0 answers to the cluster and
//! module commands (CLUSTER, ASKING, READONLY, READWRITE, MODULE) and RESTORE-ASKING,
//! which is RESTORE under another name.

use super::connection::{help_reply, unknown_subcommand};
use super::{flags::*, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("cluster", -2, 0, cluster),
    Command::new("asking", 1, FAST, cluster_disabled),
    Command::new("readonly", 1, LOADING | STALE | FAST, cluster_disabled),
    Command::new("readwrite", 1, LOADING | STALE | FAST, cluster_disabled),
    Command::new("module", -2, ADMIN, module),
    Command::new("restore-asking", -4, WRITE | DENYOOM, super::dump::restore).keys(1, 1, 1),
];

const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

fn cluster_disabled(_ctx: &mut Ctx, _out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    Err(CmdError::msg(CLUSTER_DISABLED))
}

/// CLUSTER: every subcommand Redis knows is refused as in a server started without
/// `cluster-enabled`; other names are unknown subcommands.
fn cluster(_ctx: &mut Ctx, _out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let known = super::meta_types::meta("cluster").and_then(|m| m.sub(&argv[1]));
    match known {
        Some(_) => Err(CmdError::msg(CLUSTER_DISABLED)),
        None => Err(unknown_subcommand(&argv[1], "CLUSTER")),
    }
}

const MODULE_HELP: &[&str] = &[
    "LIST",
    "    List the loaded modules (none: Tandem does not load modules).",
    "LOAD <path> [<arg> ...]",
    "    Load a module from <path> (refused: Tandem does not load modules).",
    "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
    "    Load a module with configuration (refused: Tandem does not load modules).",
    "UNLOAD <name>",
    "    Unload a module.",
    "HELP",
    "    Print this help.",
];

const MODULE_NOT_ALLOWED: &str = "ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// MODULE: no module is ever loaded. LOAD/LOADEX/UNLOAD are refused by
/// `enable-module-command` first, as in Redis; when allowed they fail as a load or an
/// unload of a module that is not there fails.
fn module(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = argv[1].to_ascii_lowercase();
    match &sub[..] {
        b"help" if argv.len() == 2 => {
            help_reply(out, "MODULE", MODULE_HELP);
            Ok(())
        }
        b"list" if argv.len() == 2 => {
            out.array(0);
            Ok(())
        }
        b"load" | b"loadex" | b"unload" => {
            let mode = ctx
                .config()
                .get("enable-module-command")
                .unwrap_or("no")
                .to_string();
            if !super::server::allowed_by(ctx, &mode) {
                return Err(CmdError::msg(MODULE_NOT_ALLOWED));
            }
            if &sub[..] == b"unload" {
                return Err(CmdError::msg(
                    "ERR Error unloading module: no such module with that name",
                ));
            }
            Err(CmdError::msg(
                "ERR Error loading the extension. Please check the server logs.",
            ))
        }
        _ => Err(unknown_subcommand(&argv[1], "MODULE")),
    }
}
