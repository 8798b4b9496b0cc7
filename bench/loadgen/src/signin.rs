//! The sign-in benchmark's load (`bench/signin/run.sh`): seeds a pool with users who have
//! permanent passwords, then drives USER_PASSWORD_AUTH, REFRESH_TOKEN_AUTH, GetUser and SRP
//! sign-ins (InitiateAuth + RespondToAuthChallenge, answered by the aws-cognito-srp client) for a
//! fixed time each, printing one JSON line per flow. Public actions go unsigned, as apps send them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::Target;
use crate::wire::{Answer, Conn};

pub const PASSWORD: &str = "Bench-Passw0rd!";

/// What one call ended in: `Ok`, or the error's `__type`.
type Outcome = std::result::Result<(), String>;

pub struct Args {
    /// The server's process, whose CPU time each flow reports per request (Linux /proc).
    pub cpu_pid: Option<u32>,
    pub endpoint: String,
    pub flows: Vec<String>,
    pub users: usize,
    pub size: usize,
    pub seconds: f64,
    pub concurrency: usize,
    pub backoff: Duration,
}

/// Calls `make(conn, i)` from `concurrency` worker threads for `seconds`, each with its own
/// kept-alive connection (`wire::Conn`); latencies (ms) of successes, and per error type its
/// count and latencies.
///
/// A TooManyRequestsException makes that worker wait `backoff` before its next call, as the
/// AWS SDKs back off from throttling errors (a client that retried at once would only measure
/// how fast the server can say no).
async fn drive_for<F>(
    endpoint: &str,
    seconds: f64,
    concurrency: usize,
    backoff: Duration,
    make: F,
) -> (f64, Vec<f64>, BTreeMap<String, Vec<f64>>)
where
    F: Fn(&mut Conn, usize) -> Outcome + Send + Sync + 'static,
{
    let endpoint = endpoint.to_string();
    let run = move || {
        let next = AtomicUsize::new(0);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let worker = || {
            let mut ok = Vec::new();
            let mut errors: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            let mut conn = match Conn::new(&endpoint) {
                Ok(c) => c,
                Err(e) => {
                    errors.entry(e.to_string()).or_default().push(0.0);
                    return (ok, errors);
                }
            };
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let outcome = make(&mut conn, i);
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                match outcome {
                    Ok(()) => ok.push(ms),
                    Err(kind) => {
                        let throttled = kind == "TooManyRequestsException";
                        errors.entry(kind).or_default().push(ms);
                        if throttled && !backoff.is_zero() {
                            std::thread::sleep(backoff);
                        }
                    }
                }
            }
            (ok, errors)
        };
        let mut ok = Vec::new();
        let mut errors: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..concurrency).map(|_| s.spawn(worker)).collect();
            for w in workers {
                if let Ok((o, e)) = w.join() {
                    ok.extend(o);
                    for (k, v) in e {
                        errors.entry(k).or_default().extend(v);
                    }
                }
            }
        });
        let wall = started.elapsed().as_secs_f64();
        ok.sort_by(|a, b| a.total_cmp(b));
        for v in errors.values_mut() {
            v.sort_by(|a, b| a.total_cmp(b));
        }
        (wall, ok, errors)
    };
    tokio::task::spawn_blocking(run).await.unwrap_or_else(|e| {
        (
            0.0,
            Vec::new(),
            BTreeMap::from([(e.to_string(), vec![0.0])]),
        )
    })
}

/// One unsigned call: the answer's body when it is a 200, else the error's `__type`.
fn call(conn: &mut Conn, action: &str, body: &Value) -> std::result::Result<Answer, String> {
    let a = conn
        .call_public(action, body.to_string().as_bytes())
        .map_err(kind)?;
    if a.status != 200 {
        return Err(kind(anyhow::anyhow!("{action}: {} {}", a.status, a.text())));
    }
    Ok(a)
}

/// Whether an answer holds `field` with a string value (an answer's tokens, say), without
/// parsing all of it. Peers space their JSON differently (`"a": "b"` from Python's json).
fn holds(a: &Answer, field: &str) -> Outcome {
    let key = format!("\"{field}\"");
    let found = a.body.windows(key.len()).enumerate().any(|(at, w)| {
        w == key.as_bytes()
            && a.body[at + key.len()..]
                .iter()
                .filter(|b| !b.is_ascii_whitespace())
                .take(2)
                .eq(b":\"".iter())
    });
    if found {
        Ok(())
    } else {
        Err(format!("no {field}"))
    }
}

fn pick(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// CPU milliseconds (user + system, all threads) a process has used so far.
fn cpu_ms(pid: &str) -> Option<f64> {
    static TICKS: std::sync::LazyLock<f64> = std::sync::LazyLock::new(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1000.0 / *TICKS)
}

/// CPU used by the server and by this load generator while a flow ran.
struct CpuSpan {
    server: Option<(String, f64)>,
    own: Option<f64>,
}

impl CpuSpan {
    fn start(pid: Option<u32>) -> Self {
        let server = pid.and_then(|p| cpu_ms(&p.to_string()).map(|c| (p.to_string(), c)));
        Self {
            server,
            own: cpu_ms("self"),
        }
    }

    /// (server, load generator) CPU ms per completed request.
    fn per_request(&self, requests: usize) -> (Option<f64>, Option<f64>) {
        let n = requests.max(1) as f64;
        let server = self
            .server
            .as_ref()
            .and_then(|(pid, before)| cpu_ms(pid).map(|now| (now - before) / n));
        let own = self
            .own
            .and_then(|b| cpu_ms("self").map(|now| (now - b) / n));
        (server, own)
    }
}

fn report(
    flow: &str,
    args: &Args,
    (wall, ok, errors): (f64, &[f64], &BTreeMap<String, Vec<f64>>),
    cpu: CpuSpan,
) {
    let (server_cpu, own_cpu) = cpu.per_request(ok.len());
    let errs: serde_json::Map<String, Value> = errors
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!({ "count": v.len(), "per_s": v.len() as f64 / wall, "p50_ms": pick(v, 0.5), "p99_ms": pick(v, 0.99) }),
            )
        })
        .collect();
    println!(
        "{}",
        json!({
            "measure": flow,
            "size": args.size,
            "concurrency": args.concurrency,
            "seconds": wall,
            "requests": ok.len(),
            "per_s": ok.len() as f64 / wall,
            "p50_ms": pick(ok, 0.5),
            "p99_ms": pick(ok, 0.99),
            "errors": errs,
            "server_cpu_ms_per_request": server_cpu,
            "loadgen_cpu_ms_per_request": own_cpu,
        })
    );
}

/// The `__type` of a failed call, from the error text `Target::call` or [`call`] makes.
fn kind(e: anyhow::Error) -> String {
    let text = e.to_string();
    text.split("\"__type\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| text.chars().take(60).collect())
}

struct Pool {
    id: String,
    client_id: String,
}

async fn seed(t: &Target, args: &Args) -> Result<Pool> {
    let flows = [
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    ];
    let (id, client_id) = crate::create_pool(t, "bench-signin", &flows).await?;
    let t = Arc::new(t.clone());
    let pool_id = Arc::new(id.clone());
    // Users who sign in: a permanent password each.
    let (tt, pp) = (t.clone(), pool_id.clone());
    crate::drive(args.users, 4, move |i| {
        let (t, p) = (tt.clone(), pp.clone());
        async move {
            let name = format!("signer{i:06}");
            t.call(
                "AdminCreateUser",
                &json!({ "UserPoolId": *p, "Username": name, "MessageAction": "SUPPRESS" }),
            )
            .await?;
            t.call(
                "AdminSetUserPassword",
                &json!({ "UserPoolId": *p, "Username": name, "Password": PASSWORD, "Permanent": true }),
            )
            .await?;
            Ok(())
        }
    })
    .await
    .context("seeding users")?;
    // The rest of the pool: users who only sit there.
    let filler = args.size.saturating_sub(args.users);
    let (tt, pp) = (t.clone(), pool_id.clone());
    let started = Instant::now();
    crate::drive(filler, 8, move |i| {
        let (t, p) = (tt.clone(), pp.clone());
        async move {
            t.call(
                "AdminCreateUser",
                &json!({
                    "UserPoolId": *p,
                    "Username": format!("filler{i:07}"),
                    "MessageAction": "SUPPRESS",
                    "UserAttributes": [{ "Name": "email", "Value": format!("filler{i:07}@bench.test") }],
                }),
            )
            .await
            .map(|_| ())
        }
    })
    .await
    .context("seeding the pool")?;
    if filler > 0 {
        eprintln!(
            "seeded {filler} more users in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Pool { id, client_id })
}

fn password_auth(p: &Pool, user: usize) -> Value {
    json!({
        "ClientId": p.client_id,
        "AuthFlow": "USER_PASSWORD_AUTH",
        "AuthParameters": { "USERNAME": format!("signer{user:06}"), "PASSWORD": PASSWORD },
    })
}

/// One sign-in per user: their tokens, for the refresh and GetUser flows.
async fn tokens_of_all(
    t: &Arc<Target>,
    p: &Arc<Pool>,
    users: usize,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(users);
    for chunk in (0..users).collect::<Vec<_>>().chunks(8) {
        let calls = chunk.iter().map(|&i| {
            let (t, p) = (t.clone(), p.clone());
            async move { t.call_public("InitiateAuth", &password_auth(&p, i)).await }
        });
        for r in futures::future::join_all(calls).await {
            let r = r?;
            let a = &r["AuthenticationResult"];
            out.push((
                a["AccessToken"]
                    .as_str()
                    .context("no access token")?
                    .to_string(),
                a["RefreshToken"]
                    .as_str()
                    .context("no refresh token")?
                    .to_string(),
            ));
        }
    }
    Ok(out)
}

pub async fn run(args: Args) -> Result<()> {
    let t = Arc::new(Target::new(&args.endpoint)?);
    let p = Arc::new(seed(&t, &args).await?);
    let users = args.users;
    for flow in &args.flows {
        match flow.as_str() {
            "password" => {
                let cpu = CpuSpan::start(args.cpu_pid);
                let (wall, ok, errors) = password_for(&p, &args, args.seconds).await;
                report("USER_PASSWORD_AUTH", &args, (wall, &ok, &errors), cpu);
            }
            "password-interleaved" => interleaved(&p, &args).await,
            "refresh" | "getuser" => {
                let tokens = Arc::new(tokens_of_all(&t, &p, users).await?);
                let refresh = flow == "refresh";
                let cpu = CpuSpan::start(args.cpu_pid);
                let (client_id, tk) = (p.client_id.clone(), tokens.clone());
                let (wall, ok, errors) = drive_for(
                    &args.endpoint,
                    args.seconds,
                    args.concurrency,
                    args.backoff,
                    move |conn, i| {
                        let (access, refresh_token) = &tk[i % tk.len()];
                        if refresh {
                            let body = json!({
                                "ClientId": client_id,
                                "AuthFlow": "REFRESH_TOKEN_AUTH",
                                "AuthParameters": { "REFRESH_TOKEN": refresh_token },
                            });
                            holds(&call(conn, "InitiateAuth", &body)?, "IdToken")
                        } else {
                            let body = json!({ "AccessToken": access });
                            holds(&call(conn, "GetUser", &body)?, "Username")
                        }
                    },
                )
                .await;
                let name = if refresh {
                    "REFRESH_TOKEN_AUTH"
                } else {
                    "GetUser"
                };
                report(name, &args, (wall, &ok, &errors), cpu);
            }
            "srp" => {
                let cpu = CpuSpan::start(args.cpu_pid);
                let pp = p.clone();
                let (wall, ok, errors) = drive_for(
                    &args.endpoint,
                    args.seconds,
                    args.concurrency,
                    args.backoff,
                    move |conn, i| srp_sign_in(conn, &pp, i % users),
                )
                .await;
                report("USER_SRP_AUTH", &args, (wall, &ok, &errors), cpu);
            }
            other => bail!("unknown flow {other}"),
        }
    }
    Ok(())
}

/// USER_PASSWORD_AUTH sign-ins for `seconds`.
async fn password_for(
    p: &Arc<Pool>,
    args: &Args,
    seconds: f64,
) -> (f64, Vec<f64>, BTreeMap<String, Vec<f64>>) {
    let (pp, users) = (p.clone(), args.users);
    drive_for(
        &args.endpoint,
        seconds,
        args.concurrency,
        args.backoff,
        move |conn, i| {
            let a = call(conn, "InitiateAuth", &password_auth(&pp, i % users))?;
            holds(&a, "AccessToken")
        },
    )
    .await
}

/// USER_PASSWORD_AUTH against the argon2id floor in alternating windows of `seconds` each
/// (floor, sign-ins, floor, …, floor), `INTERLEAVED_ROUNDS` sign-in windows: each is compared
/// with the floors just before and after it, seconds apart, because this machine's floor
/// drifts by ±15 % within a minute. The server is idle during a floor window.
async fn interleaved(p: &Arc<Pool>, args: &Args) {
    const INTERLEAVED_ROUNDS: usize = 8;
    let window = args.seconds;
    let floor = || async move {
        tokio::task::spawn_blocking(move || crate::saturate(window, crate::argon2_job))
            .await
            .unwrap_or(0.0)
    };
    let mut floors = vec![floor().await];
    let mut windows = Vec::new();
    for _ in 0..INTERLEAVED_ROUNDS {
        let cpu = CpuSpan::start(args.cpu_pid);
        let (wall, ok, errors) = password_for(p, args, window).await;
        let (server_cpu, _) = cpu.per_request(ok.len());
        floors.push(floor().await);
        let around = (floors[floors.len() - 2] + floors[floors.len() - 1]) / 2.0;
        let per_s = ok.len() as f64 / wall;
        windows.push(json!({
            "per_s": per_s,
            "floor_per_s": around,
            "ratio": per_s / around,
            "server_cpu_ms_per_request": server_cpu,
            "errors": errors.values().map(Vec::len).sum::<usize>(),
        }));
    }
    let mut ratios: Vec<f64> = windows.iter().filter_map(|w| w["ratio"].as_f64()).collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "measure": "USER_PASSWORD_AUTH interleaved with the argon2id floor",
            "concurrency": args.concurrency,
            "window_seconds": window,
            "floors": floors,
            "windows": windows,
            "ratio_mean": mean,
            "ratio_median": pick(&ratios, 0.5),
            "ratio_min": ratios.first(),
            "ratio_max": ratios.last(),
        })
    );
}

/// Both calls of an SRP sign-in, the client's arithmetic done by aws-cognito-srp on the worker's
/// thread (it is CPU work the load generator pays, not the server).
fn srp_sign_in(conn: &mut Conn, p: &Pool, user: usize) -> Outcome {
    let name = format!("signer{user:06}");
    let client = aws_cognito_srp::SrpClient::new(
        aws_cognito_srp::User::new(&p.id, &name, PASSWORD),
        &p.client_id,
        None,
    );
    let a = client.get_auth_parameters().a;
    let start = json!({
        "ClientId": p.client_id,
        "AuthFlow": "USER_SRP_AUTH",
        "AuthParameters": { "USERNAME": name, "SRP_A": a },
    });
    let challenge: Value = serde_json::from_slice(&call(conn, "InitiateAuth", &start)?.body)
        .map_err(|e| e.to_string())?;
    let params = &challenge["ChallengeParameters"];
    let get = |k: &str| params[k].as_str().unwrap_or_default().to_string();
    let user_id = get("USER_ID_FOR_SRP");
    let v = client
        .verify(&get("SECRET_BLOCK"), &user_id, &get("SALT"), &get("SRP_B"))
        .map_err(|e| format!("srp client: {e}"))?;
    let answer = json!({
        "ClientId": p.client_id,
        "ChallengeName": "PASSWORD_VERIFIER",
        "Session": challenge.get("Session"),
        "ChallengeResponses": {
            "USERNAME": user_id,
            "PASSWORD_CLAIM_SECRET_BLOCK": v.password_claim_secret_block,
            "PASSWORD_CLAIM_SIGNATURE": v.password_claim_signature,
            "TIMESTAMP": v.timestamp,
        },
    });
    holds(
        &call(conn, "RespondToAuthChallenge", &answer)?,
        "AccessToken",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Answer {
        Answer {
            status: 200,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn holds_finds_a_string_field_however_the_json_is_spaced() {
        assert!(
            holds(
                &answer(r#"{"AuthenticationResult":{"AccessToken":"x"}}"#),
                "AccessToken"
            )
            .is_ok()
        );
        assert!(
            holds(
                &answer(r#"{"AuthenticationResult": {"AccessToken": "x"}}"#),
                "AccessToken"
            )
            .is_ok()
        );
        assert!(
            holds(
                &answer(
                    r#"{"AccessToken" :
 "x"}"#
                ),
                "AccessToken"
            )
            .is_ok()
        );
    }

    #[test]
    fn holds_refuses_a_missing_or_non_string_field() {
        assert!(holds(&answer(r#"{"Session":"AccessToken"}"#), "AccessToken").is_err());
        assert!(holds(&answer(r#"{"AccessToken":null}"#), "AccessToken").is_err());
        assert!(holds(&answer(r#"{"ChallengeName":"SMS_MFA"}"#), "AccessToken").is_err());
    }
}
