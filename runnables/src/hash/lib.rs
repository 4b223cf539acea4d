//! hash: a CPU-bound runnable for benchmarks. Input = decimal round count N (default 200000
//! when empty or not a number); output = the final 64-bit state as 16 lowercase hex digits.
//! Each round folds the 8 state bytes through FNV-1a and then applies an xorshift, so every
//! round depends on the previous one and the loop cannot be collapsed or skipped.
//! Cost: the default 200000 rounds take ~3 ms per job (3.0 ms median under wasmtime-py 50 with
//! epoch interruption, 3.5 ms through reactr_wasm on the 2-core dev machine; ~15 ns/round).

use suborbital::runnable::{RunErr, Runnable};

struct Hash;

const DEFAULT_ROUNDS: u64 = 200_000;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Runnable for Hash {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        let rounds = std::str::from_utf8(&input).ok().and_then(|text| text.trim().parse::<u64>().ok()).unwrap_or(DEFAULT_ROUNDS);
        let mut state = FNV_OFFSET;
        for round in 0..rounds {
            let mut fnv = FNV_OFFSET ^ round;
            for byte in state.to_le_bytes() {
                fnv = (fnv ^ byte as u64).wrapping_mul(FNV_PRIME);
            }
            state = fnv ^ (fnv >> 29);
            state ^= state << 17;
            state ^= state >> 31;
        }
        Ok(format!("{:016x}", state).into_bytes())
    }
}

suborbital::register_runnable!(Hash);
