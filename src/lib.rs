//! Library half of the operator crate.
pub mod local {
    //! Local cluster mode.
    pub mod api;
}
