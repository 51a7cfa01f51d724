//! Attempt counts a transaction cannot roll back. A refused sign-in, code or second factor is
//! counted in a table, but a SQL caller (a compromised application login, any role granted a web
//! role) can roll each wrong guess back — a savepoint, or the whole transaction — and guess
//! without limit. These counts live in shared memory instead (`crate::shared_attempts`, with
//! pg_auth in shared_preload_libraries): every attempt is counted before the answer is known,
//! and only a success clears the count. Pure logic, no pgrx.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Slots per kind of attempt: 4 × 4096 slots of 32 bytes, 512 kB of shared memory. Each kind has
/// its own slots, so cheap attempts of one kind (codes cost a hash) cannot push out the counts of
/// another (passwords cost an argon2 check each).
pub const SLOTS_PER_KIND: usize = 4096;
const KINDS: usize = 4;
pub const SLOTS: usize = SLOTS_PER_KIND * KINDS;
/// Slots looked at for one key (its neighbourhood); where a new key goes when all are taken.
const PROBE: usize = 16;

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    key: [u8; 16],
    attempts: u32,
    /// The limit of the last attempt: a slot at or past it is refusing, and is pushed out only
    /// when every slot of its neighbourhood is.
    limit: u32,
    /// Unix seconds when this key's window began; 0: the slot is free.
    window_start: i64,
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Table {
    /// Random per server start: which slots a key lands in cannot be computed from outside, so
    /// nobody can fill a victim's neighbourhood on purpose.
    seed: [u8; 32],
    slots: [Slot; SLOTS],
}

impl Table {
    pub fn new(seed: [u8; 32]) -> Table {
        Table {
            seed,
            slots: [Slot::default(); SLOTS],
        }
    }

    fn slot_key(&self, kind: &str, key: &[u8]) -> [u8; 16] {
        let digest = Sha256::new()
            .chain_update(self.seed)
            .chain_update(kind.as_bytes())
            .chain_update([0])
            .chain_update(key)
            .finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    fn neighbourhood(kind: &str, key: &[u8; 16]) -> impl Iterator<Item = usize> {
        let region = match kind {
            "login" => 0,
            "second_factor" => 1,
            "code" => 2,
            _ => 3,
        } * SLOTS_PER_KIND;
        let start = u64::from_le_bytes(key[..8].try_into().unwrap_or_default()) as usize;
        (0..PROBE).map(move |i| region + (start + i) % SLOTS_PER_KIND)
    }

    /// Counts one attempt of `kind` for `key` at `now`; true while the attempts of the current
    /// window (`window` seconds from the first) are at most `max`.
    pub fn attempt(&mut self, kind: &str, key: &[u8], now: i64, max: u32, window: i64) -> bool {
        let slot_key = self.slot_key(kind, key);
        let live = |slot: &Slot| slot.window_start != 0 && now - slot.window_start < window;
        let index = Self::neighbourhood(kind, &slot_key)
            .find(|&i| self.slots[i].key == slot_key && self.slots[i].window_start != 0)
            .unwrap_or_else(|| {
                Self::neighbourhood(kind, &slot_key)
                    .find(|&i| !live(&self.slots[i]))
                    .unwrap_or_else(|| self.random_victim(kind, &slot_key))
            });
        let slot = &mut self.slots[index];
        if slot.key != slot_key || !live(slot) {
            *slot = Slot {
                key: slot_key,
                attempts: 0,
                limit: max,
                window_start: now,
            };
        }
        // One past the limit is enough to refuse: a higher count would only rank a made-up key
        // above a victim's.
        slot.attempts = slot.attempts.saturating_add(1).min(max.saturating_add(1));
        slot.limit = max;
        slot.attempts <= max
    }

    /// The slot a new key takes in a full neighbourhood: one at random, with odds inversely
    /// proportional to its count. A ranking by count let made-up keys tried once more than a
    /// victim push it out at their first landing (rounds 3 and 4 of the live attack); evenly at
    /// random, made-up keys tried once each did it after about one region's worth; weighted, a key
    /// tried as often as the limit is about five times harder to push out than one tried once, and
    /// whichever counts the attacker chooses, an extra guess costs thousands of attempts.
    fn random_victim(&self, kind: &str, slot_key: &[u8; 16]) -> usize {
        let weight = |i: usize| 65_536 / u64::from(self.slots[i].attempts.max(1));
        let total: u64 = Self::neighbourhood(kind, slot_key).map(weight).sum();
        let mut pick = (u64::from(rand::rngs::OsRng.next_u32()) * total) >> 32;
        for i in Self::neighbourhood(kind, slot_key) {
            if pick < weight(i) {
                return i;
            }
            pick -= weight(i);
        }
        Self::neighbourhood(kind, slot_key).next().unwrap_or(0)
    }

    /// Forgets the attempts of `kind` for `key` (after a success).
    pub fn clear(&mut self, kind: &str, key: &[u8]) {
        let slot_key = self.slot_key(kind, key);
        if let Some(i) =
            Self::neighbourhood(kind, &slot_key).find(|&i| self.slots[i].key == slot_key)
        {
            self.slots[i] = Slot::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Box<Table> {
        Box::new(Table::new([7; 32]))
    }

    #[test]
    fn attempts_past_the_limit_are_refused_until_the_window_ends() {
        let mut t = table();
        for _ in 0..5 {
            assert!(t.attempt("code", b"victim", 1000, 5, 60));
        }
        assert!(!t.attempt("code", b"victim", 1001, 5, 60));
        assert!(!t.attempt("code", b"victim", 1059, 5, 60));
        // Other keys and kinds are counted apart.
        assert!(t.attempt("code", b"other", 1001, 5, 60));
        assert!(t.attempt("login", b"victim", 1001, 5, 60));
        // A new window starts after `window` seconds from the first attempt.
        assert!(t.attempt("code", b"victim", 1060, 5, 60));
    }

    #[test]
    fn a_success_clears_the_count() {
        let mut t = table();
        for _ in 0..5 {
            t.attempt("mfa", b"u", 10, 5, 60);
        }
        t.clear("mfa", b"u");
        assert!(t.attempt("mfa", b"u", 11, 5, 60));
    }

    /// How many of `trials` victims at their limit are still counted after `fillers` made-up
    /// keys, each tried `tries` times.
    fn survivors(trials: u32, fillers: u32, tries: u32) -> u32 {
        (0..trials)
            .filter(|trial| {
                let mut t = table();
                for _ in 0..6 {
                    t.attempt("login", b"victim", 100, 5, 900);
                }
                for i in 0..fillers {
                    for _ in 0..tries {
                        t.attempt("login", &(i + trial * 1_000_000).to_le_bytes(), 101, 5, 900);
                    }
                }
                !t.attempt("login", b"victim", 102, 5, 900)
            })
            .count() as u32
    }

    #[test]
    fn made_up_keys_rarely_push_out_a_key_under_attack() {
        // Rounds 3 to 5 of the live attack: ranked by count, made-up keys tried more often than
        // a victim (or the victim stopped one short of its limit) pushed it out after about 141
        // keys. Now, with twice the region's worth of keys tried once, or once the region is
        // full of keys at their limit, most victims at their limit stay counted.
        let region = SLOTS_PER_KIND as u32;
        assert!(survivors(30, region * 2, 1) >= 15);
        assert!(survivors(30, region + region / 4, 6) >= 15);
        // The table is bounded: enough keys do push it out.
        assert!(survivors(10, region * 40, 1) <= 3);
    }

    #[test]
    fn cheap_kinds_cannot_push_out_other_kinds() {
        let mut t = table();
        for _ in 0..5 {
            t.attempt("login", b"victim", 100, 5, 900);
        }
        for i in 0..(SLOTS_PER_KIND * 4) as u32 {
            t.attempt("code", &i.to_le_bytes(), 101, 25, 900);
        }
        assert!(!t.attempt("login", b"victim", 102, 5, 900));
    }

    #[test]
    fn the_seed_decides_where_keys_go() {
        let a = Table::new([1; 32]);
        let b = Table::new([2; 32]);
        assert_ne!(a.slot_key("code", b"x"), b.slot_key("code", b"x"));
    }
}
