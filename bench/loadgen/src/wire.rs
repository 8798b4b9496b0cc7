//! The sign-in load's own HTTP/1.1 client: one kept-alive connection per worker thread, one
//! unsigned AWS JSON call at a time, the thread blocked in `read` until the answer comes.
//!
//! The load generator shares the two cores with the server, so what it spends per call is taken
//! from the server's throughput. reqwest (a task and channels per connection, wake-ups across the
//! runtime's threads) cost 0.21 ms of CPU per password sign-in; a blocked thread costs one
//! wake-up per answer.

use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{Context, Result, bail};

/// The largest answer read (a sign-in's three tokens are about 4 KB).
const MAX_ANSWER: usize = 1 << 20;

pub struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// A call's answer: the status and the body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text, for the error `kind` reads the `__type` from.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Conn {
    /// `endpoint` is `http://host:port`; nothing is connected until the first call.
    pub fn new(endpoint: &str) -> Result<Self> {
        let addr = endpoint
            .strip_prefix("http://")
            .context("the sign-in load speaks plain http")?
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// `POST /` with `X-Amz-Target: AWSCognitoIdentityProviderService.{action}`, unsigned, as
    /// apps send public actions. A kept-alive connection the server closed meanwhile is opened
    /// again once, before anything of the request was answered.
    pub fn call_public(&mut self, action: &str, body: &[u8]) -> Result<Answer> {
        let head = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-amz-json-1.1\r\n\
             x-amz-target: AWSCognitoIdentityProviderService.{action}\r\ncontent-length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let reused = self.stream.is_some();
        match self.exchange(&request) {
            Ok(a) => Ok(a),
            Err(_) if reused => {
                self.stream = None;
                self.exchange(&request)
            }
            Err(e) => Err(e),
        }
    }

    fn exchange(&mut self, request: &[u8]) -> Result<Answer> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let result = self.round_trip(request);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn round_trip(&mut self, request: &[u8]) -> Result<Answer> {
        let stream = self.stream.as_mut().context("not connected")?;
        stream.write_all(request)?;
        self.buf.clear();
        let head = loop {
            read_more(stream, &mut self.buf)?;
            if let Some(h) = answer_head(&self.buf)? {
                break h;
            }
        };
        let (status, body_at, close) = (head.status, head.len, head.close);
        let length = head.length.context("an answer without content-length")?;
        if length > MAX_ANSWER {
            bail!("an answer of {length} bytes");
        }
        while self.buf.len() < body_at + length {
            read_more(stream, &mut self.buf)?;
        }
        let body = self.buf[body_at..body_at + length].to_vec();
        if close {
            self.stream = None;
        }
        Ok(Answer { status, body })
    }
}

/// An answer's head, parsed once all of it is in the buffer (also the fixed-rate load's, in
/// `rate.rs`).
pub struct Head {
    pub status: u16,
    /// Its length in bytes: the body starts there.
    pub len: usize,
    pub length: Option<usize>,
    pub chunked: bool,
    pub close: bool,
}

/// The head at the front of `buf`; `None` while it is incomplete.
pub fn answer_head(buf: &[u8]) -> Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = res.parse(buf)? else {
        return Ok(None);
    };
    let header = |name: &str| {
        res.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    Ok(Some(Head {
        status: res.code.unwrap_or(0),
        len,
        length: header("content-length").map(|v| v.parse()).transpose()?,
        chunked: header("transfer-encoding").is_some_and(|v| v.ends_with("chunked")),
        close: header("connection").is_some_and(|v| v == "close"),
    }))
}

/// Appends what the socket has to `buf`; the peer closing is an error.
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk)?;
    if n == 0 {
        bail!("connection closed");
    }
    if buf.len() + n > MAX_ANSWER + 64 * 1024 {
        bail!("answer too large");
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}
