//! JWT core, pure Rust (no pgrx): key parsing and generation, signing, verification.

pub mod keygen;
pub mod keys;
pub mod ring;
pub mod sign;
pub mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wycheproof;
