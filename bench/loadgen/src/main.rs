//! The load generator of the directory benchmark (`bench/directory/run.sh`): drives one
//! Cognito-compatible server (Cognate, moto, cognito-local) with signed AWS JSON requests from
//! many concurrent connections and prints one JSON line per measurement. `floor` measures what
//! this machine can do at best: argon2id hashes, SRP verifiers and RS256 signatures per second on
//! every core, and the CPU one server-side SRP sign-in needs. `signin` drives the sign-in flows.

mod gateway;
mod rate;
mod signin;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// argon2id (19 MiB, t=2, p=1) hashes/s and SRP verifiers/s with every core busy.
    Floor {
        #[arg(long, default_value_t = 8.0)]
        seconds: f64,
    },
    /// Seeds a pool to each size and measures AdminGetUser and filtered ListUsers there.
    Lookups {
        #[arg(long)]
        endpoint: String,
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Stop seeding a peer after this many seconds and report the size it reached.
        #[arg(long, default_value_t = 900.0)]
        seed_budget_s: f64,
        #[arg(long, default_value_t = 3000)]
        requests: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Run this after each size is seeded (e.g. to measure memory and disk), with the size.
        #[arg(long)]
        after_size: Option<String>,
    },
    /// Sign-in flows (password, refresh, getuser, srp), each for a fixed time.
    Signin {
        #[arg(long)]
        endpoint: String,
        #[arg(long, value_delimiter = ',')]
        flows: Vec<String>,
        /// Users who sign in.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// Users in the pool in all (the rest only sit there).
        #[arg(long, default_value_t = 100)]
        size: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// The server's pid, to report its CPU per request.
        #[arg(long)]
        cpu_pid: Option<u32>,
        /// Wait after a TooManyRequestsException before the next call, in milliseconds.
        #[arg(long, default_value_t = 100)]
        backoff_ms: u64,
    },
    /// Gateway benchmark: a pool, a client and a signed-in user; prints ids and tokens.
    GatewaySetup {
        #[arg(long)]
        endpoint: String,
    },
    /// Gateway benchmark: a minimal upstream answering `ok` on one thread.
    Upstream {
        #[arg(long)]
        listen: String,
    },
    /// GETs (or POSTs) at a fixed rate (open loop), latency percentiles: the gateway
    /// benchmark's latency rows and the soak's load.
    Rate {
        #[arg(long)]
        url: String,
        /// `name: value`, repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Kept-alive connections the requests are spread over.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Writes each answered request's planned time and latency (ms) to this file.
        #[arg(long)]
        trace: Option<std::path::PathBuf>,
        /// POST this body (with its content-length) instead of a GET.
        #[arg(long)]
        post: Option<String>,
    },
    /// AdminCreateUser and SignUp throughput into a fresh pool.
    Writes {
        #[arg(long)]
        endpoint: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
}

const KEY: &str = "AKIDBENCHMARK";
const SECRET: &str = "benchmark-secret";

#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    endpoint: String,
    host: String,
}

impl Target {
    fn new(endpoint: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(120))
            .build()?;
        let host = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            host,
        })
    }

    /// A public action (InitiateAuth, GetUser, ...): unsigned, as apps send them.
    async fn call_public(&self, action: &str, body: &Value) -> Result<Value> {
        let res = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "x-amz-target",
                format!("AWSCognitoIdentityProviderService.{action}"),
            )
            .body(body.to_string())
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            bail!("{action}: {status} {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn call(&self, action: &str, body: &Value) -> Result<Value> {
        let body = body.to_string();
        let target = format!("AWSCognitoIdentityProviderService.{action}");
        let mut headers = vec![
            ("host".to_string(), self.host.clone()),
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            ("x-amz-target".to_string(), target),
        ];
        let identity = Credentials::new(KEY, SECRET, None, None, "bench").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("cognito-idp")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let url = format!("{}/", self.endpoint);
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        for (k, v) in instructions.headers() {
            headers.push((k.to_string(), v.to_string()));
        }
        let mut req = self.http.post(&url).body(body);
        for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
            req = req.header(k, v);
        }
        let res = req.send().await?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            bail!("{action}: {status} {text}");
        }
        Ok(if text.is_empty() {
            json!({})
        } else {
            serde_json::from_str(&text)?
        })
    }
}

/// Latencies of `n` calls made by `concurrency` workers; `make(i)` builds call `i`.
async fn drive<F, Fut>(n: usize, concurrency: usize, make: F) -> Result<(f64, Vec<f64>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let make = make.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return Ok::<_, anyhow::Error>(lat);
                    }
                    let t = Instant::now();
                    make(i).await?;
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await??);
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    Ok((wall, all))
}

fn report(kind: &str, size: usize, wall: f64, lat: &[f64], extra: Value) {
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let mean = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
    let mut line = json!({
        "measure": kind,
        "size": size,
        "requests": lat.len(),
        "per_s": lat.len() as f64 / wall,
        "mean_ms": mean,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
    });
    if let (Some(l), Some(e)) = (line.as_object_mut(), extra.as_object()) {
        l.extend(e.clone());
    }
    println!("{line}");
}

/// A pool and an app client allowing `flows` (none: Cognito's default set).
async fn create_pool(t: &Target, name: &str, flows: &[&str]) -> Result<(String, String)> {
    let pool = t
        .call("CreateUserPool", &json!({ "PoolName": name }))
        .await?;
    let id = pool["UserPool"]["Id"]
        .as_str()
        .context("no pool id")?
        .to_string();
    let mut body = json!({ "UserPoolId": id, "ClientName": "bench" });
    if !flows.is_empty() {
        body["ExplicitAuthFlows"] = json!(flows);
    }
    let client = t.call("CreateUserPoolClient", &body).await?;
    let client_id = client["UserPoolClient"]["ClientId"]
        .as_str()
        .context("no client id")?
        .to_string();
    Ok((id, client_id))
}

fn user_body(pool: &str, i: usize) -> Value {
    json!({
        "UserPoolId": pool,
        "Username": format!("user{i:07}"),
        "MessageAction": "SUPPRESS",
        "TemporaryPassword": "Bench-Passw0rd!",
        "UserAttributes": [{ "Name": "email", "Value": format!("user{i:07}@bench.test") }],
    })
}

/// A well-spread pseudo-random index below `n` (no RNG crate needed).
fn spread(i: usize, n: usize) -> usize {
    (i.wrapping_mul(2_654_435_761) ^ (i >> 3)) % n.max(1)
}

async fn lookups(
    endpoint: &str,
    sizes: &[usize],
    budget: f64,
    requests: usize,
    concurrency: usize,
    after: Option<&str>,
) -> Result<()> {
    let t = Arc::new(Target::new(endpoint)?);
    let (pool, _) = create_pool(&t, "bench-lookups", &[]).await?;
    let pool = Arc::new(pool);
    let started = Instant::now();
    let mut have = 0usize;
    for &size in sizes {
        // Seed in chunks so the budget is checked as we go.
        while have < size && started.elapsed().as_secs_f64() < budget {
            let chunk = (size - have).min(2000);
            let base = have;
            let (tt, pp) = (t.clone(), pool.clone());
            let (wall, lat) = drive(chunk, concurrency, move |i| {
                let (t, p) = (tt.clone(), pp.clone());
                async move {
                    t.call("AdminCreateUser", &user_body(&p, base + i))
                        .await
                        .map(|_| ())
                }
            })
            .await?;
            have += lat.len();
            if have == size || have % 20_000 < chunk {
                eprintln!("seeded {have} users ({:.0}/s)", lat.len() as f64 / wall);
            }
        }
        let reached = have;
        if let Some(cmd) = after {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{cmd} {reached}"))
                .status()?;
            if !status.success() {
                bail!("after-size command failed");
            }
        }
        let (tt, pp) = (t.clone(), pool.clone());
        let (wall, lat) = drive(requests, concurrency, move |i| {
            let (t, p) = (tt.clone(), pp.clone());
            async move {
                let u = spread(i, reached);
                let out = t
                    .call(
                        "AdminGetUser",
                        &json!({ "UserPoolId": *p, "Username": format!("user{u:07}") }),
                    )
                    .await?;
                if out["Username"].is_null() {
                    bail!("AdminGetUser returned no user");
                }
                Ok(())
            }
        })
        .await?;
        report(
            "AdminGetUser",
            reached,
            wall,
            &lat,
            json!({ "target_size": size }),
        );
        let (tt, pp) = (t.clone(), pool.clone());
        let (wall, lat) = drive(requests, concurrency, move |i| {
            let (t, p) = (tt.clone(), pp.clone());
            async move {
                let u = spread(i + 7, reached);
                let filter = format!("email = \"user{u:07}@bench.test\"");
                let out = t
                    .call(
                        "ListUsers",
                        &json!({ "UserPoolId": *p, "Filter": filter, "Limit": 60 }),
                    )
                    .await?;
                let n = out["Users"].as_array().map(Vec::len).unwrap_or(0);
                if n != 1 {
                    bail!("ListUsers with a filter found {n} users, expected 1");
                }
                Ok(())
            }
        })
        .await?;
        report(
            "ListUsers(filter)",
            reached,
            wall,
            &lat,
            json!({ "target_size": size }),
        );
        if reached < size {
            eprintln!("seeding budget spent at {reached} users (wanted {size})");
            break;
        }
    }
    Ok(())
}

async fn writes(endpoint: &str, count: usize, concurrency: usize) -> Result<()> {
    let t = Arc::new(Target::new(endpoint)?);
    let (pool, client) = create_pool(&t, "bench-writes", &[]).await?;
    let (pool, client) = (Arc::new(pool), Arc::new(client));
    let (tt, pp) = (t.clone(), pool.clone());
    let (wall, lat) = drive(count, concurrency, move |i| {
        let (t, p) = (tt.clone(), pp.clone());
        async move {
            t.call("AdminCreateUser", &user_body(&p, i))
                .await
                .map(|_| ())
        }
    })
    .await?;
    report("AdminCreateUser", count, wall, &lat, json!({}));
    let (tt, cc) = (t.clone(), client.clone());
    let (wall, lat) = drive(count, concurrency, move |i| {
        let (t, c) = (tt.clone(), cc.clone());
        async move {
            let body = json!({
                "ClientId": *c,
                "Username": format!("signup{i:07}"),
                "Password": "Bench-Passw0rd!",
                "UserAttributes": [{ "Name": "email", "Value": format!("signup{i:07}@bench.test") }],
            });
            t.call("SignUp", &body).await.map(|_| ())
        }
    })
    .await?;
    report("SignUp", count, wall, &lat, json!({}));
    Ok(())
}

/// Runs `job` on every core for about `seconds`; returns completed jobs per second.
pub(crate) fn saturate(seconds: f64, job: fn(u64)) -> f64 {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|c| {
                s.spawn(move || {
                    let mut n = 0usize;
                    while Instant::now() < deadline {
                        job((c * 1_000_000 + n) as u64);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    done as f64 / started.elapsed().as_secs_f64()
}

pub(crate) fn argon2_job(i: u64) {
    // The best this machine can do: each thread reuses its argon2 memory, as Cognate's do.
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Ok(params) = argon2::Params::new(19 * 1024, 2, 1, Some(32)) else {
        return;
    };
    let n = params.block_count();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    BLOCKS.with(|b| {
        let mut b = b.borrow_mut();
        b.resize(n, argon2::Block::default());
        let mut out = [0u8; 32];
        let _ = a.hash_password_into_with_memory(
            format!("password{i}").as_bytes(),
            &[7u8; 16],
            &mut out,
            &mut b[..],
        );
    });
}

static RSA: std::sync::LazyLock<Option<aws_lc_rs::rsa::KeyPair>> = std::sync::LazyLock::new(|| {
    aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).ok()
});

/// One RS256 signature over a token-sized message (what each ID or access token costs).
fn rs256_job(i: u64) {
    let Some(key) = RSA.as_ref() else { return };
    let msg = format!("{i:0>700}");
    let mut sig = vec![0u8; key.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let _ = key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &rng,
        msg.as_bytes(),
        &mut sig,
    );
}

/// CPU milliseconds of the server's part of one SRP sign-in, on one thread: B, the session key
/// (its modular exponentiations) and the two token signatures.
fn srp_server_ms(rounds: u32) -> f64 {
    let v = srp::verifier("Pool", "user", "password", &[9u8; 16]);
    let a = srp::verifier("Pool", "client", "secret", &[3u8; 16]);
    let started = Instant::now();
    for i in 0..rounds {
        let b = [i as u8 | 1; 32];
        if let Some(big_b) = srp::server_public(&v, &b) {
            let _ = srp::session_key(&a, &big_b, &b, &v);
        }
        rs256_job(u64::from(i));
        rs256_job(u64::from(i) + 1);
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds.max(1))
}

fn srp_job(i: u64) {
    let _ = srp::verifier("Pool", "user", &format!("password{i}"), &[9u8; 16]);
}

/// The same allocator as Cognate's, so that the argon2id floor hashes in memory allocated the
/// way the server's is (mimalloc hands these large blocks out on transparent huge pages, which
/// makes argon2id faster than on 4 KiB pages).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Floor { seconds } => {
            let argon2 = saturate(seconds, argon2_job);
            let srp = saturate(seconds / 2.0, srp_job);
            let _ = RSA.as_ref();
            let rs256 = saturate(seconds / 2.0, rs256_job);
            let srp_server = srp_server_ms(40);
            println!(
                "{}",
                json!({
                    "measure": "floor",
                    "argon2id_per_s": argon2,
                    "srp_verifier_per_s": srp,
                    "rs256_sign_per_s": rs256,
                    "srp_server_ms": srp_server,
                })
            );
            Ok(())
        }
        Cmd::Lookups {
            endpoint,
            sizes,
            seed_budget_s,
            requests,
            concurrency,
            after_size,
        } => tokio::runtime::Runtime::new()?.block_on(lookups(
            &endpoint,
            &sizes,
            seed_budget_s,
            requests,
            concurrency,
            after_size.as_deref(),
        )),
        Cmd::Signin {
            endpoint,
            flows,
            users,
            size,
            seconds,
            concurrency,
            cpu_pid,
            backoff_ms,
        } => tokio::runtime::Runtime::new()?.block_on(signin::run(signin::Args {
            backoff: Duration::from_millis(backoff_ms),
            cpu_pid,
            endpoint,
            flows,
            users,
            size,
            seconds,
            concurrency,
        })),
        Cmd::Writes {
            endpoint,
            count,
            concurrency,
        } => tokio::runtime::Runtime::new()?.block_on(writes(&endpoint, count, concurrency)),
        Cmd::GatewaySetup { endpoint } => {
            tokio::runtime::Runtime::new()?.block_on(gateway::setup(&endpoint))
        }
        Cmd::Upstream { listen } => gateway::upstream(&listen),
        Cmd::Rate {
            url,
            headers,
            rate,
            seconds,
            connections,
            trace,
            post,
        } => {
            let headers: Vec<(String, String)> = headers
                .iter()
                .filter_map(|h| h.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let load = rate::Load {
                rate,
                seconds,
                connections,
            };
            rate::run(&url, &headers, post.as_deref(), load, trace.as_deref())
        }
    }
}
