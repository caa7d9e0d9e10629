//! Storage transfer harness for `benches/storage.sh`: moves one object through
//! gitbak's storage layer alone, with no git on either side, so its
//! throughput compares with a provider's reference client moving the same
//! bytes.
//!
//! `get LOCATION KEY` streams the object through the SHA-256 that restore
//! computes for every bundle, into nothing; `put LOCATION KEY FILE` uploads a
//! file create-only, as create writes a bundle. Each prints one line:
//! `<bytes> <seconds> <sha256>`. Run with anything else (as `cargo test
//! --all-targets` does), it prints its usage and exits 0.

use std::time::Instant;

use anyhow::Context as _;
use gitbak::storage::digest::DigestReader;
use gitbak::storage::{self, Key, Location, Tuning, WriteMode};

const USAGE: &str = "usage: transfer get LOCATION KEY | transfer put LOCATION KEY FILE";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verb, location, key) = match args.as_slice() {
        [verb, location, key, ..] if verb == "get" || verb == "put" => (verb, location, key),
        _ => {
            eprintln!("{USAGE}");
            return Ok(());
        }
    };
    let location = Location::parse(location).context("parsing LOCATION")?;
    let storage = storage::open(&location, Tuning::default()).await?;
    let key = Key::new(key.clone())?;
    let started = Instant::now();
    let digest = if verb == "get" {
        let (mut reader, digest) = DigestReader::new(storage.get(&key).await?);
        tokio::io::copy(&mut reader, &mut tokio::io::sink()).await?;
        digest.finish()
    } else {
        let path = args.get(3).context(USAGE)?;
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {path}"))?;
        let (body, digest) = DigestReader::new(file);
        storage
            .put(&key, Box::pin(body), WriteMode::CreateOnly)
            .await?;
        digest.finish()
    };
    println!(
        "{} {:.6} {}",
        digest.size,
        started.elapsed().as_secs_f64(),
        digest.sha256
    );
    Ok(())
}
