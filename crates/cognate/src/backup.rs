//! `cognate backup`: a copy of a data directory that `cognate serve --data-dir` starts from —
//! the SQLite database, copied consistently while servers use it, the secrets it cannot be read
//! without, and the APIs file — checked before it is called done (security checklist R9).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::config::{DATABASE_FILE, Settings};
use crate::secrets;

/// Creates `to` and writes the copy into it; on any failure, removes it again.
pub async fn back_up(settings: &Settings, to: &Path) -> Result<()> {
    if !store::is_single_node(&settings.database) {
        bail!(
            "only an SQLite database is backed up by cognate; back PostgreSQL up with pg_dump, and keep \
             COGNATE_MASTER_KEY with it"
        );
    }
    if settings.database.contains(":memory:") || settings.database.contains("mode=memory") {
        bail!("an in-memory database cannot be backed up");
    }
    create_private_dir(to)?;
    let kept = match copy_into(settings, to).await {
        Ok(kept) => kept,
        Err(e) => {
            // No half-made backup left to be mistaken for a whole one.
            let _ = fs::remove_dir_all(to);
            return Err(e);
        }
    };
    tracing::info!(to = %to.display(), files = ?kept, "backed up; start from it with `cognate serve --data-dir`");
    if settings.master_key.is_some() {
        tracing::warn!(
            "the master key is configured (COGNATE_MASTER_KEY), not in a file: keep it with this backup, \
             which cannot be read without it"
        );
    }
    Ok(())
}

/// The database, the secrets and the APIs file; then the check that the master key opens the
/// copy, and everything flushed to disk. The names of the files written.
async fn copy_into(settings: &Settings, to: &Path) -> Result<Vec<&'static str>> {
    let db = to.join(DATABASE_FILE);
    store::backup_sqlite(&settings.database, &db)
        .await
        .context("cannot copy the database")?;
    private_and_synced(&db)?;
    let mut kept = vec![DATABASE_FILE];
    kept.extend(secrets::copy_secrets(
        &settings.data_dir,
        to,
        settings.master_key.is_some(),
    )?);
    let apis = settings.data_dir.join("cognate.yaml");
    if apis.exists() {
        fs::copy(&apis, to.join("cognate.yaml"))
            .with_context(|| format!("cannot copy {}", apis.display()))?;
        private_and_synced(&to.join("cognate.yaml"))?;
        kept.push("cognate.yaml");
    }
    // The copy opens with the key it is kept with, or it is no backup.
    let vault = secrets::master_key(settings.master_key.as_deref(), to)?;
    let copy = store::connect(&format!("sqlite://{}", db.display()))
        .await
        .context("cannot open the copy")?;
    secrets::check_master_key(copy.as_ref(), &vault).await?;
    drop(copy);
    fs::File::open(to)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot flush {}", to.display()))?;
    Ok(kept)
}

/// A new directory only its owner can read.
fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))
}

/// Readable by its owner only, and on disk.
fn private_and_synced(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", path.display()))
}
