//! `cognate backup`: a copy of a data directory that `cognate serve --data-dir` starts from —
//! the SQLite database, copied consistently while servers use it, and the secrets it cannot be
//! read without (security checklist R9).

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::config::Settings;
use crate::secrets;

/// Creates `to` and writes the copy into it.
pub async fn back_up(settings: &Settings, to: &Path) -> Result<()> {
    if !store::is_single_node(&settings.database) {
        bail!(
            "only an SQLite database is backed up by cognate; back PostgreSQL up with pg_dump, and keep \
             COGNATE_MASTER_KEY with it"
        );
    }
    create_private_dir(to)?;
    let copied = async {
        store::backup_sqlite(&settings.database, &to.join(crate::config::DATABASE_FILE))
            .await
            .context("cannot copy the database")?;
        secrets::copy_secrets(&settings.data_dir, to, settings.master_key.is_some())
    }
    .await;
    let kept = match copied {
        Ok(kept) => kept,
        Err(e) => {
            // No half-made backup left to be mistaken for a whole one.
            let _ = std::fs::remove_dir_all(to);
            return Err(e);
        }
    };
    tracing::info!(to = %to.display(), secrets = ?kept, "backed up; start from it with `cognate serve --data-dir`");
    if settings.master_key.is_some() {
        tracing::warn!(
            "the master key is configured (COGNATE_MASTER_KEY), not in a file: keep it with this backup, \
             which cannot be read without it"
        );
    }
    Ok(())
}

/// A new directory only its owner can read.
fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))
}
