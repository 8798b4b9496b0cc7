//! The `cognate` binary as a user runs it: a real process on a real socket, driven over HTTP,
//! admin calls signed with the AWS SDK for Rust's signer.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};

const KEY_ID: &str = "AKIDSERVERTEST";
const SECRET: &str = "server-test-secret";

struct Server {
    child: Child,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(data_dir: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cognate"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("COGNATE_ACCESS_KEY_ID", KEY_ID)
        .env("COGNATE_SECRET_ACCESS_KEY", SECRET)
        .env("COGNATE_LOG_FORMAT", "text")
        .env_remove("COGNATE_MASTER_KEY")
        .env_remove("COGNATE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts the server and waits for its ready line, which names the address it got.
fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Server {
    let mut child = command(data_dir, extra_env).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("cognate ready on ") {
                let url = line[i + 17..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send(url);
            }
            sink.lock().unwrap().push(line);
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not become ready");
    Server { child, url, log }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn call(s: &Server, action: &str, body: &Value, signed: bool) -> reqwest::Response {
    let body = body.to_string();
    let host = s.url.trim_start_matches("http://").to_string();
    let target = format!("AWSCognitoIdentityProviderService.{action}");
    let mut headers = vec![
        ("host".to_string(), host),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("x-amz-target".to_string(), target),
    ];
    if signed {
        let identity = Credentials::new(KEY_ID, SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-central-1")
            .name("cognito-idp")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let req = SignableRequest::new(
            "POST",
            format!("{}/", s.url),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        for (k, v) in instructions.headers() {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let mut req = client().post(format!("{}/", s.url)).body(body);
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

async fn ok(s: &Server, action: &str, body: Value) -> Value {
    let res = call(s, action, &body, true).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, 200, "{action}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn error(res: reqwest::Response) -> (u16, String, String, Value) {
    let status = res.status().as_u16();
    let header = res
        .headers()
        .get("x-amzn-ErrorType")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(res.headers().get("x-amzn-RequestId").is_some());
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["__type"].as_str().unwrap_or_default().to_string(),
        header,
        body,
    )
}

#[tokio::test]
async fn health_request_ids_and_cors() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let res = client()
        .get(format!("{}/health", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = res
        .headers()
        .get("x-amzn-RequestId")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 36);
    let res = client()
        .request(reqwest::Method::OPTIONS, format!("{}/", s.url))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-amz-target,x-amz-user-agent",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    for name in [
        "content-type",
        "x-amz-target",
        "x-amz-user-agent",
        "authorization",
        "x-amz-date",
    ] {
        assert!(allowed.contains(name), "{name} not allowed: {allowed}");
    }
    let res = call(&s, "ListUserPools", &json!({"MaxResults": 1}), true).await;
    assert!(
        res.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-amzn-RequestId")
    );
}

#[tokio::test]
async fn bad_requests_get_aws_error_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);

    let (status, kind, header, _) =
        error(call(&s, "ListUserPools", &json!({"MaxResults": 1}), false).await).await;
    assert_eq!(
        (status, kind.as_str(), header.as_str()),
        (
            400,
            "MissingAuthenticationTokenException",
            "MissingAuthenticationTokenException:"
        )
    );

    let (_, kind, _, _) = error(call(&s, "NoSuchAction", &json!({}), true).await).await;
    assert_eq!(kind, "UnknownOperationException");

    let (_, kind, _, body) = error(call(&s, "DescribeUserPool", &json!({}), true).await).await;
    assert_eq!(kind, "InvalidParameterException");
    assert!(
        body["message"].as_str().unwrap().contains("userPoolId"),
        "{body}"
    );

    let (_, kind, _, _) =
        error(call(&s, "DescribeUserPool", &json!({"UserPoolId": 7}), true).await).await;
    assert_eq!(kind, "SerializationException");

    let (_, kind, _, body) = error(
        call(
            &s,
            "DescribeUserPool",
            &json!({"UserPoolId": "eu-central-1_nope"}),
            true,
        )
        .await,
    )
    .await;
    assert_eq!(kind, "ResourceNotFoundException", "{body}");

    // Malformed JSON on a public action (no signature involved).
    let res = client()
        .post(format!("{}/", s.url))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "AWSCognitoIdentityProviderService.SignUp")
        .body("{\"ClientId\": ")
        .send()
        .await
        .unwrap();
    let (status, kind, _, _) = error(res).await;
    assert_eq!((status, kind.as_str()), (400, "SerializationException"));

    // An oversized body is refused from its declared length, before it is read: the answer
    // comes while the client has sent only the headers. (Sending the body with an HTTP client
    // races the server closing the connection.)
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AWSCognitoIdentityProviderService.SignUp\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn pools_take_the_region_of_the_signature_and_admin_flow_works() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[("COGNATE_PASSWORD_HASHING", "development")]);
    let pool = ok(
        &s,
        "CreateUserPool",
        json!({"PoolName": "p", "AutoVerifiedAttributes": ["email"]}),
    )
    .await;
    let id = pool["UserPool"]["Id"].as_str().unwrap().to_string();
    assert!(id.starts_with("eu-central-1_"), "{id}");
    assert!(
        pool["UserPool"]["Arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:cognito-idp:eu-central-1:")
    );
    let client_id = ok(
        &s,
        "CreateUserPoolClient",
        json!({"UserPoolId": id, "ClientName": "c"}),
    )
    .await["UserPoolClient"]["ClientId"]
        .as_str()
        .unwrap()
        .to_string();
    let res = call(&s, "SignUp", &json!({"ClientId": client_id, "Username": "zoe", "Password": "Passw0rd!", "UserAttributes": [{"Name": "email", "Value": "zoe@example.com"}]}), false).await;
    assert_eq!(res.status(), 200);
    let outbox: Value = client()
        .get(format!(
            "{}/_cognate/messages?pool_id={id}&username=zoe",
            s.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = &outbox["messages"][0];
    assert_eq!(
        (m["kind"].as_str(), m["to"].as_str()),
        (Some("signup"), Some("zoe@example.com"))
    );
    let code = m["code"].as_str().unwrap();
    assert!(m["body"].as_str().unwrap().contains(code));
    let res = call(
        &s,
        "ConfirmSignUp",
        &json!({"ClientId": client_id, "Username": "zoe", "ConfirmationCode": code}),
        false,
    )
    .await;
    assert_eq!(res.status(), 200);
    let user = ok(
        &s,
        "AdminGetUser",
        json!({"UserPoolId": id, "Username": "zoe"}),
    )
    .await;
    assert_eq!(user["UserStatus"], "CONFIRMED");
    // Nothing secret in the log.
    let log = s.log.lock().unwrap().join("\n");
    assert!(!log.contains("Passw0rd!") && !log.contains(code) && !log.contains(SECRET));
}

#[tokio::test]
async fn a_wrong_master_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    drop(start(dir.path(), &[]));
    assert!(dir.path().join("master.key").exists());
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let out = command(dir.path(), &[("COGNATE_MASTER_KEY", other)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("master key cannot decrypt"), "{text}");
}

#[tokio::test]
async fn generated_secrets_are_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path(), &[]);
    cmd.env_remove("COGNATE_ACCESS_KEY_ID")
        .env_remove("COGNATE_SECRET_ACCESS_KEY");
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut ready = false;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("cognate ready on") {
            ready = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready);
    for f in ["master.key", "admin-key.json"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let key: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("admin-key.json")).unwrap())
            .unwrap();
    assert!(key["access_key_id"].as_str().unwrap().starts_with("AKIA"));
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    // The default (slow) hashing profile keeps requests in flight long enough to signal.
    let s = start(dir.path(), &[]);
    let pool = ok(&s, "CreateUserPool", json!({"PoolName": "drain"})).await;
    let id = pool["UserPool"]["Id"].as_str().unwrap().to_string();
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let body =
                json!({"UserPoolId": id, "Username": format!("u{i}"), "MessageAction": "SUPPRESS"});
            let s = &s;
            async move {
                call(s, "AdminCreateUser", &body, true)
                    .await
                    .status()
                    .as_u16()
            }
        })
        .collect();
    let pid = s.child.id();
    let signal = async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
    };
    let (statuses, _) = tokio::join!(futures::future::join_all(calls), signal);
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(
        accepted,
        statuses.len(),
        "in-flight requests failed: {statuses:?}"
    );
    let mut s = s;
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    // Every acknowledged user is there after a restart.
    let s = start(dir.path(), &[]);
    let users = ok(&s, "ListUsers", json!({"UserPoolId": id})).await;
    assert_eq!(users["Users"].as_array().unwrap().len(), accepted);
}
