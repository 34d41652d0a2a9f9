//! Randomness from the operating system's CSPRNG (never a seeded generator).

use rand::TryRng;
use rand::rngs::SysRng;

/// `N` random bytes from the OS.
pub fn os_random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SysRng.try_fill_bytes(&mut bytes).map_err(|e| {
        std::io::Error::other(format!("the OS random number generator failed: {e}"))
    })?;
    Ok(bytes)
}
