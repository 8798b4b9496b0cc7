//! The master key and the generated admin key, kept in the data directory (mode 0600) when not
//! configured, and the check that the master key opens what the database holds.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use userpool::Store;
use vault::Vault;

use crate::config::AdminKeyConfig;

const MASTER_KEY_FILE: &str = "master.key";
const ADMIN_KEY_FILE: &str = "admin-key.json";
const CHECK_KEY: &str = "master_key_check";
const CHECK_TEXT: &[u8] = b"cognate master key check";

/// Writes `contents` to a new file readable only by its owner; never overwrites.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

fn check_private(path: &Path) -> Result<()> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "secret file is readable by others; chmod 600 it");
    }
    Ok(())
}

/// The master key from configuration, or from (or newly into) `{data_dir}/master.key`.
pub fn master_key(configured: Option<&str>, data_dir: &Path) -> Result<Vault> {
    if let Some(text) = configured {
        return Vault::from_base64(text)
            .context("COGNATE_MASTER_KEY is not a base64-encoded 32-byte key");
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    if !path.exists() {
        let key = Vault::generate_base64()?;
        write_private(&path, format!("{key}\n").as_bytes())?;
        tracing::warn!(path = %path.display(), "generated a new master key; back it up with the database");
    }
    check_private(&path)?;
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Vault::from_base64(&text)
        .with_context(|| format!("{} does not hold a valid master key", path.display()))
}

/// Copies the data directory's secrets into `to` (mode 0600): the master key, unless it is
/// `configured` (then it is in no file), and the generated admin key, if any; their names.
pub fn copy_secrets(from: &Path, to: &Path, configured: bool) -> Result<Vec<&'static str>> {
    // (file, whether the copy is useless without it)
    let mut files = vec![(ADMIN_KEY_FILE, false)];
    if !configured {
        files.insert(0, (MASTER_KEY_FILE, true));
    }
    let mut copied = Vec::new();
    for (name, required) in files {
        let path = from.join(name);
        if !path.exists() {
            if required {
                bail!(
                    "{} is missing: the database cannot be read without it",
                    path.display()
                );
            }
            continue;
        }
        let contents =
            fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        write_private(&to.join(name), &contents)?;
        copied.push(name);
    }
    Ok(copied)
}

/// Refuses to go on when the database was sealed with another master key.
pub async fn check_master_key(store: &dyn Store, vault: &Vault) -> Result<()> {
    let sealed = vault.seal(CHECK_TEXT, CHECK_KEY.as_bytes())?;
    let stored = store.init_meta(CHECK_KEY, &sealed).await?;
    match vault.open(&stored, CHECK_KEY.as_bytes()) {
        Ok(text) if text == CHECK_TEXT => Ok(()),
        _ => bail!(
            "the master key cannot decrypt what the database holds: start with the master key this database \
             was created with (COGNATE_MASTER_KEY or the data directory's master.key)"
        ),
    }
}

#[derive(Serialize, Deserialize)]
struct StoredAdminKey {
    access_key_id: String,
    secret_access_key: String,
}

/// The generated admin key of a data directory, for the CLI's calls; never creates one.
pub fn stored_admin_key(data_dir: &Path) -> Result<AdminKeyConfig> {
    let path = data_dir.join(ADMIN_KEY_FILE);
    if !path.exists() {
        anyhow::bail!(
            "no admin key: set COGNATE_ACCESS_KEY_ID and COGNATE_SECRET_ACCESS_KEY, or pass the server's --data-dir ({} does not exist)",
            path.display()
        );
    }
    generated_admin_key(data_dir)
}

/// The generated admin key in `{data_dir}/admin-key.json`, created on first start.
pub fn generated_admin_key(data_dir: &Path) -> Result<AdminKeyConfig> {
    let path = data_dir.join(ADMIN_KEY_FILE);
    if !path.exists() {
        let mut id = [0u8; 10];
        let mut secret = [0u8; 30];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| anyhow::anyhow!("random source failed"))?;
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| anyhow::anyhow!("random source failed"))?;
        let key = StoredAdminKey {
            access_key_id: format!("AKIA{}", hex::encode_upper(id)),
            secret_access_key: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                secret,
            ),
        };
        write_private(&path, serde_json::to_string_pretty(&key)?.as_bytes())?;
        tracing::warn!(path = %path.display(), "no admin key configured: generated one (its secret is in that file)");
    }
    check_private(&path)?;
    let key: StoredAdminKey = serde_json::from_str(&fs::read_to_string(&path)?)
        .with_context(|| format!("{} is not a valid admin key file", path.display()))?;
    tracing::info!(access_key_id = %key.access_key_id, path = %path.display(), "admin key loaded");
    Ok(AdminKeyConfig {
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
        pools: None,
    })
}
