//! Configuration: the YAML file, environment variables and command-line flags, resolved in that
//! order of increasing precedence into one [`Settings`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The YAML file (`--config`). Every member is optional; unknown members are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub issuer_base: Option<String>,
    pub master_key: Option<String>,
    pub admin_keys: Option<Vec<AdminKeyConfig>>,
    pub password_hashing: Option<String>,
    pub allow_development_hashing: Option<bool>,
    pub body_limit_bytes: Option<usize>,
    pub messages: Option<MessagesConfig>,
    pub signing_keys: Option<SigningKeysConfig>,
    /// The gateway's APIs (see `gateway::definition`); applied again on SIGHUP.
    pub apis: Option<Vec<gateway::ApiDef>>,
    /// Usage plans of the APIs' key-protected routes; applied with the APIs.
    pub usage_plans: Option<Vec<gateway::definition::UsagePlanDef>>,
    /// API keys (with their values) and their plans; applied with the APIs.
    pub api_keys: Option<Vec<gateway::definition::ApiKeyDef>>,
    /// Requests a node admits against a quota before writing its count [default: 100 on
    /// PostgreSQL, 1,000 on SQLite, which one node holds]; with N nodes a quota is exceeded by
    /// at most (N - 1) x this.
    pub quota_batch: Option<u64>,
    /// A refresh token a rotation replaced, presented again past its grace period: `refuse`
    /// it, as Cognito does, or `revoke_family` too [default: refuse].
    pub refresh_token_reuse: Option<String>,
    /// Cognito's request-rate quotas: requests a second by operation category (e.g.
    /// `UserAuthentication: 120`), kept by each node; categories left out are not limited.
    pub request_quotas: Option<BTreeMap<awsjson::quotas::Category, f64>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeysConfig {
    /// Rotate a pool's keys when they are this many days old; 0 never rotates [default: 90].
    pub rotate_after_days: Option<u32>,
    /// A rotated key is published this long before it signs [default: 86400].
    pub lead_seconds: Option<u32>,
}

/// How long a rotated key is published before it signs, by default: a day, the longest a token
/// lives, so that a verifier that caches the JWKS for as long as a token lives has the new key
/// before the first token it signs arrives (security checklist R6).
pub const DEFAULT_KEY_LEAD_S: u32 = 86_400;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKeyConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Limit the key to these pool ids.
    pub pools: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesConfig {
    /// `outbox`, `log` or `smtp`.
    pub sender: Option<String>,
    pub smtp: Option<SmtpConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: Option<u16>,
    /// `none`, `starttls` or `tls`.
    pub security: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Outbox,
    Log,
    Smtp,
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: String,
    pub region: String,
    pub account_id: String,
    pub issuer_base: String,
    pub master_key: Option<String>,
    pub admin_keys: Vec<AdminKeyConfig>,
    pub development_hashing: bool,
    pub body_limit: usize,
    pub sender: Sender,
    pub smtp: Option<SmtpConfig>,
    /// Automatic key rotation: the age (ms) at which keys are replaced, if ever.
    pub key_rotation_after: Option<i64>,
    /// How long (ms) a rotated key is published before it signs.
    pub key_lead: i64,
    /// The APIs, usage plans and API keys of the file, applied at start.
    pub definition: crate::apis::Definition,
    pub quota_batch: u64,
    /// The file SIGHUP re-reads for APIs: `--config`, else `{data_dir}/cognate.yaml`.
    pub reload_from: PathBuf,
    pub refresh_reuse: userpool::RefreshReuse,
    pub request_quotas: BTreeMap<awsjson::quotas::Category, f64>,
}

/// What the command line and environment say (clap fills these from both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub region: Option<String>,
    pub issuer_base: Option<String>,
    pub master_key: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub password_hashing: Option<String>,
    pub allow_development_hashing: bool,
    pub sender: Option<String>,
    /// The file the server was started with, if any.
    pub config_path: Option<PathBuf>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9229";
/// The SQLite database's file in the data directory, when no database URL is given.
pub const DATABASE_FILE: &str = "cognate.db";
pub const DEFAULT_DATA_DIR: &str = "cognate-data";

impl Settings {
    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Self> {
        let listen_text = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text
            .parse()
            .with_context(|| format!("invalid listen address {listen_text:?}"))?;
        let data_dir = o
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database = o
            .database
            .or(file.database)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join(DATABASE_FILE).display()));
        let quota_batch = file
            .quota_batch
            .unwrap_or(if store::is_single_node(&database) {
                gateway::usage::ONE_NODE_QUOTA_BATCH
            } else {
                gateway::usage::DEFAULT_QUOTA_BATCH
            });
        let mut admin_keys = file.admin_keys.unwrap_or_default();
        match (o.access_key_id, o.secret_access_key) {
            (Some(id), Some(secret)) => admin_keys.push(AdminKeyConfig {
                access_key_id: id,
                secret_access_key: secret,
                pools: None,
            }),
            (None, None) => {}
            _ => bail!("COGNATE_ACCESS_KEY_ID and COGNATE_SECRET_ACCESS_KEY must be set together"),
        }
        let hashing = o
            .password_hashing
            .or(file.password_hashing)
            .unwrap_or_else(|| "default".into());
        let development_hashing = match hashing.as_str() {
            "default" => false,
            "development" => true,
            other => bail!(
                "unknown password hashing profile {other:?} (expected default or development)"
            ),
        };
        let allow_dev =
            o.allow_development_hashing || file.allow_development_hashing.unwrap_or(false);
        if development_hashing && !listen.ip().is_loopback() && !allow_dev {
            bail!(
                "the development password hashing profile is refused on the non-loopback address {listen}; \
                 pass --allow-development-hashing to force it"
            );
        }
        let messages = file.messages.unwrap_or_default();
        let sender = match o.sender.or(messages.sender).as_deref() {
            Some("outbox") => Sender::Outbox,
            Some("log") => Sender::Log,
            Some("smtp") => Sender::Smtp,
            Some(other) => bail!("unknown message sender {other:?} (expected outbox, log or smtp)"),
            // The outbox keeps codes in clear: the default only where nobody else can reach it.
            None if listen.ip().is_loopback() => Sender::Outbox,
            None => Sender::Log,
        };
        if sender == Sender::Smtp && messages.smtp.is_none() {
            bail!("messages.sender is smtp but messages.smtp is not configured");
        }
        let reload_from = o
            .config_path
            .clone()
            .unwrap_or_else(|| data_dir.join("cognate.yaml"));
        let refresh_reuse = match file.refresh_token_reuse.as_deref() {
            None | Some("refuse") => userpool::RefreshReuse::Refuse,
            Some("revoke_family") => userpool::RefreshReuse::RevokeFamily,
            Some(other) => {
                bail!("unknown refresh_token_reuse {other:?} (expected refuse or revoke_family)")
            }
        };
        let request_quotas = file.request_quotas.unwrap_or_default();
        if let Some((category, rate)) = request_quotas
            .iter()
            .find(|(_, r)| !(r.is_finite() && **r > 0.0 && **r <= 1e6))
        {
            bail!(
                "request_quotas.{category:?}: {rate} is not a rate (requests a second above 0, at most 1000000)"
            );
        }
        let keys = file.signing_keys.unwrap_or_default();
        let days = i64::from(keys.rotate_after_days.unwrap_or(90));
        Ok(Settings {
            key_rotation_after: (days > 0).then_some(days * 86_400_000),
            key_lead: i64::from(keys.lead_seconds.unwrap_or(DEFAULT_KEY_LEAD_S)) * 1000,
            listen,
            issuer_base: o
                .issuer_base
                .or(file.issuer_base)
                .unwrap_or_else(|| format!("http://{listen}")),
            data_dir,
            database,
            region: o
                .region
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".into()),
            account_id: file.account_id.unwrap_or_else(|| "000000000000".into()),
            master_key: o.master_key.or(file.master_key),
            admin_keys,
            development_hashing,
            body_limit: file.body_limit_bytes.unwrap_or(1 << 20),
            sender,
            smtp: messages.smtp,
            quota_batch,
            definition: crate::apis::Definition {
                apis: file.apis.unwrap_or_default(),
                usage_plans: file.usage_plans.unwrap_or_default(),
                api_keys: file.api_keys.unwrap_or_default(),
            },
            reload_from,
            refresh_reuse,
            request_quotas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_loads_and_refresh_token_reuse_is_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cognate.example.yaml");
        let file = FileConfig::load(&path).expect("cognate.example.yaml is a valid file");
        let s = Settings::resolve(file, Overrides::default()).unwrap();
        assert_eq!(s.refresh_reuse, userpool::RefreshReuse::Refuse);
        let revoke = FileConfig {
            refresh_token_reuse: Some("revoke_family".into()),
            ..FileConfig::default()
        };
        let s = Settings::resolve(revoke, Overrides::default()).unwrap();
        assert_eq!(s.refresh_reuse, userpool::RefreshReuse::RevokeFamily);
        let bad = FileConfig {
            refresh_token_reuse: Some("forgive".into()),
            ..FileConfig::default()
        };
        let e = Settings::resolve(bad, Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("refresh_token_reuse"), "{e}");
    }

    #[test]
    fn defaults_need_no_configuration() {
        let s = Settings::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert!(s.database.starts_with("sqlite://") && s.database.ends_with("cognate.db"));
        assert_eq!(s.sender, Sender::Outbox);
        assert!(!s.development_hashing);
        assert_eq!(s.issuer_base, "http://127.0.0.1:9229");
    }

    #[test]
    fn quota_batches_are_larger_where_one_node_holds_the_database() {
        let resolve = |yaml: &str| {
            let file: FileConfig = serde_saphyr::from_str(yaml).unwrap();
            Settings::resolve(file, Overrides::default())
                .unwrap()
                .quota_batch
        };
        assert_eq!(resolve("region: us-east-1\n"), 1000);
        assert_eq!(resolve("database: postgres://127.0.0.1/test\n"), 100);
        assert_eq!(
            resolve("database: postgres://127.0.0.1/test\nquota_batch: 7\n"),
            7
        );
        assert_eq!(resolve("quota_batch: 7\n"), 7);
    }

    #[test]
    fn request_quotas_name_cognitos_categories_and_rates() {
        use awsjson::quotas::Category;
        let resolve = |yaml: &str| {
            FileConfig::parse(yaml)
                .and_then(|file| Settings::resolve(file, Overrides::default()))
                .map(|s| s.request_quotas)
        };
        assert!(resolve("").unwrap().is_empty());
        let q = resolve("request_quotas:\n  UserAuthentication: 120\n  UserList: 0.5\n").unwrap();
        assert_eq!(q[&Category::UserAuthentication], 120.0);
        assert_eq!(q[&Category::UserList], 0.5);
        let unknown = resolve("request_quotas:\n  UserAuth: 120\n").unwrap_err();
        assert!(unknown.to_string().contains("UserAuth"), "{unknown}");
        assert!(unknown.to_string().contains("line 2"), "{unknown}");
        // The example file's block of Cognito's defaults, uncommented, names every category.
        let example = include_str!("../../../cognate.example.yaml");
        let block: String = example
            .lines()
            .skip_while(|l| *l != "# request_quotas:")
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let defaults = resolve(&block).unwrap();
        assert_eq!(defaults.len(), 15, "{block}");
        assert_eq!(defaults[&Category::UserAuthentication], 120.0);
        for bad in ["0", "-1", ".nan", "2000000"] {
            let e = resolve(&format!("request_quotas:\n  UserRead: {bad}\n")).unwrap_err();
            assert!(e.to_string().contains("request_quotas.UserRead"), "{e}");
        }
    }

    #[test]
    fn flags_beat_the_file() {
        let file: FileConfig =
            serde_saphyr::from_str("listen: 127.0.0.1:1000\nregion: eu-west-1\n").unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:2000".into()),
            ..Default::default()
        };
        let s = Settings::resolve(file, o).unwrap();
        assert_eq!(s.listen.port(), 2000);
        assert_eq!(s.region, "eu-west-1");
    }

    #[test]
    fn development_hashing_is_refused_on_public_addresses_unless_forced() {
        let o = Overrides {
            listen: Some("0.0.0.0:9229".into()),
            password_hashing: Some("development".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(FileConfig::default(), o.clone()).is_err());
        let forced = Overrides {
            allow_development_hashing: true,
            ..o
        };
        assert!(
            Settings::resolve(FileConfig::default(), forced)
                .unwrap()
                .development_hashing
        );
    }

    #[test]
    fn the_outbox_is_not_the_default_off_loopback() {
        let o = Overrides {
            listen: Some("0.0.0.0:9229".into()),
            ..Default::default()
        };
        assert_eq!(
            Settings::resolve(FileConfig::default(), o).unwrap().sender,
            Sender::Log
        );
    }

    #[test]
    fn unknown_members_are_refused_with_their_line() {
        let err = serde_saphyr::from_str::<FileConfig>("listen: 127.0.0.1:1\nlisten_adress: x\n")
            .unwrap_err();
        assert!(err.to_string().contains("listen_adress"), "{err}");
    }
}
