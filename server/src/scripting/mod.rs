//! Subsystem layer: Lua scripting (EVAL/EVALSHA/SCRIPT, later FUNCTION/FCALL). Lua is
//! isolated here; scripts run commands only through `exec`'s script door.

pub mod libs;
