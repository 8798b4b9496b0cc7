//! `cognate api-keys …` and `cognate usage-plans …`: the gateway's keys and plans, managed in
//! the database directly (running servers see changes within a second). Keys and plans the
//! configuration file declares are the file's: the CLI changes only its own.

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use gateway::usage::{
    self, ApiKey, PlanLimits, Quota, Throttle, UsagePlan, UsageStore, check_key_value, check_limits,
};
use serde_json::json;

use crate::config::Settings;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// A new key; prints its id and, when generated, its value (shown only this once: the
    /// database keeps a digest).
    Create {
        #[arg(long)]
        name: String,
        /// The key's value (at least 20 characters) [default: 40 generated characters].
        #[arg(long)]
        value: Option<String>,
        /// A usage plan the key belongs to (repeatable).
        #[arg(long = "plan")]
        plans: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Keys: id, name, enabled, plans (never values).
    List,
    /// Enables or disables a key, and sets its plans when any are given.
    Update {
        #[arg(long)]
        name: String,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[arg(long = "plan")]
        plans: Vec<String>,
    },
    /// Deletes a key and its quota counts.
    Delete {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Creates or replaces a usage plan.
    Put {
        #[arg(long)]
        name: String,
        /// An API stage the plan covers, `api/stage` (repeatable).
        #[arg(long = "stage", required = true)]
        stages: Vec<String>,
        /// Throttle: steady requests per second.
        #[arg(long, requires = "burst")]
        rate: Option<f64>,
        /// Throttle: requests at once above the rate.
        #[arg(long, requires = "rate")]
        burst: Option<u32>,
        /// Quota: requests per period.
        #[arg(long, requires = "quota_period")]
        quota_limit: Option<u64>,
        /// Quota period: DAY, WEEK or MONTH (UTC).
        #[arg(long, requires = "quota_limit")]
        quota_period: Option<String>,
        /// Requests taken off the limit in the first period.
        #[arg(long, default_value_t = 0)]
        quota_offset: u64,
    },
    List,
    Delete {
        #[arg(long)]
        name: String,
    },
}

async fn open(settings: &Settings) -> Result<std::sync::Arc<dyn UsageStore>> {
    Ok(store::open(&settings.database)
        .await
        .with_context(|| format!("cannot open {}", store::redact(&settings.database)))?
        .usage)
}

/// The CLI's own key of that name (file keys belong to the file).
async fn own_key(s: &dyn UsageStore, name: &str) -> Result<ApiKey> {
    let Some(k) = s.api_keys().await?.into_iter().find(|k| k.name == name) else {
        bail!("no API key named {name:?}");
    };
    if k.from_config {
        bail!("the API key {name:?} is declared in the configuration file; change it there");
    }
    Ok(k)
}

pub async fn keys(settings: &Settings, cmd: KeyCommand) -> Result<()> {
    let s = open(settings).await?;
    match cmd {
        KeyCommand::Create {
            name,
            value,
            plans,
            disabled,
        } => {
            let generated = value.is_none();
            let value = match value {
                Some(v) => v,
                None => usage::new_key_value()?,
            };
            check_key_value(&value).map_err(anyhow::Error::msg)?;
            let known = s.usage_plans().await?;
            if let Some(p) = plans.iter().find(|p| !known.iter().any(|k| &k.name == *p)) {
                bail!("no usage plan named {p:?}");
            }
            let key = ApiKey {
                id: usage::new_key_id()?,
                name,
                digest: usage::digest(&value),
                enabled: !disabled,
                plans,
                from_config: false,
                created_ms: crate::system::wall_ms(),
            };
            s.insert_api_key(&key).await?;
            let mut out =
                json!({"id": key.id, "name": key.name, "enabled": key.enabled, "plans": key.plans});
            if generated {
                out["value"] = json!(value);
            }
            println!("{out}");
        }
        KeyCommand::List => {
            for k in s.api_keys().await? {
                println!(
                    "{}",
                    json!({"id": k.id, "name": k.name, "enabled": k.enabled, "plans": k.plans, "from_config": k.from_config})
                );
            }
        }
        KeyCommand::Update {
            name,
            enable,
            disable,
            plans,
        } => {
            let k = own_key(s.as_ref(), &name).await?;
            let enabled = if enable || disable { enable } else { k.enabled };
            let plans = if plans.is_empty() { k.plans } else { plans };
            s.set_api_key(&name, enabled, &plans).await?;
            println!(
                "{}",
                json!({"id": k.id, "name": name, "enabled": enabled, "plans": plans})
            );
        }
        KeyCommand::Delete { name } => {
            own_key(s.as_ref(), &name).await?;
            s.delete_api_key(&name).await?;
            println!("{}", json!({"deleted": name}));
        }
    }
    Ok(())
}

pub async fn plans(settings: &Settings, cmd: PlanCommand) -> Result<()> {
    let s = open(settings).await?;
    let own = |plans: &[UsagePlan], name: &str| -> Result<()> {
        if plans.iter().any(|p| p.name == name && p.from_config) {
            bail!("the usage plan {name:?} is declared in the configuration file; change it there");
        }
        Ok(())
    };
    match cmd {
        PlanCommand::Put {
            name,
            stages,
            rate,
            burst,
            quota_limit,
            quota_period,
            quota_offset,
        } => {
            own(&s.usage_plans().await?, &name)?;
            let quota = match (quota_limit, quota_period) {
                (Some(limit), Some(p)) => Some(Quota {
                    limit,
                    period: usage::parse_period(&p).with_context(|| {
                        format!("{p:?} is not a quota period (DAY, WEEK or MONTH)")
                    })?,
                    offset: quota_offset,
                }),
                _ => None,
            };
            let limits = PlanLimits {
                stages,
                throttle: rate
                    .zip(burst)
                    .map(|(rate, burst)| Throttle { rate, burst }),
                quota,
            };
            check_limits(&limits).map_err(anyhow::Error::msg)?;
            s.put_usage_plan(&UsagePlan {
                name: name.clone(),
                limits,
                from_config: false,
                created_ms: crate::system::wall_ms(),
            })
            .await?;
            println!("{}", json!({"name": name}));
        }
        PlanCommand::List => {
            for p in s.usage_plans().await? {
                println!(
                    "{}",
                    json!({"name": p.name, "stages": p.limits.stages, "throttle": p.limits.throttle, "quota": p.limits.quota, "from_config": p.from_config})
                );
            }
        }
        PlanCommand::Delete { name } => {
            own(&s.usage_plans().await?, &name)?;
            if !s.delete_usage_plan(&name).await? {
                bail!("no usage plan named {name:?}");
            }
            println!("{}", json!({"deleted": name}));
        }
    }
    Ok(())
}
