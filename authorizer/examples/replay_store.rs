//! The DPoP replay store, measured: one conditional put per proof on a real
//! DynamoDB API (moto, single-threaded, over loopback; run under
//! `scripts/with-moto.sh`). Sequential first uses and replays (their
//! latency), then racers on the same keys (exactly one must win each).
//! Writes JSON to the path given (`make bench`'s `dpop` step).
//!
//! Usage: `cargo run --release -p authorizer --example replay_store -- OUT.json [N]`

use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;

fn percentiles(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((ms.len() as f64 - 1.0) * q).round() as usize;
        ms.get(i).copied().unwrap_or(f64::NAN)
    };
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    json!({"p50": at(0.5), "p99": at(0.99), "max": at(1.0), "mean": mean, "n": ms.len()})
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().context("usage: replay_store OUT.json [N]")?;
    let n: usize = args.next().map_or(Ok(1000), |v| v.parse())?;
    let store = shared::testing::fresh_store(5).await;
    let now = shared::Clock::now(&shared::SystemClock);
    let key = |i: usize| {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        k
    };
    let (mut first, mut again) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let started = Instant::now();
        if !store.first_use_of_proof(&key(i), now + 61).await? {
            bail!("a fresh proof was refused");
        }
        first.push(started.elapsed().as_secs_f64() * 1e3);
    }
    for i in 0..n {
        let started = Instant::now();
        if store.first_use_of_proof(&key(i), now + 61).await? {
            bail!("a replay was accepted");
        }
        again.push(started.elapsed().as_secs_f64() * 1e3);
    }
    // Racers: 4 tasks on each of 200 fresh keys.
    let (keys, racers) = (200usize, 4usize);
    let mut wins = 0usize;
    for i in 0..keys {
        let k = key(1_000_000 + i);
        let tasks: Vec<_> = (0..racers)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.first_use_of_proof(&k, now + 61).await })
            })
            .collect();
        for t in tasks {
            wins += usize::from(t.await??);
        }
    }
    if wins != keys {
        bail!("{wins} wins for {keys} raced keys");
    }
    let report = json!({
        "store": "moto (single-threaded) over loopback",
        "first_use_ms": percentiles(first),
        "replay_ms": percentiles(again),
        "race": {"keys": keys, "racers_per_key": racers, "wins": wins},
    });
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("{report}");
    Ok(())
}
