//! A tiny HTTP/1.1 proxy on 127.0.0.1 that injects faults in front of the S3 test server.
//!
//! Every connection carries exactly one request (the proxy forces `Connection: close`). The
//! n-th request gets the n-th scripted [`Action`]; once the script is used up, every request
//! gets the `then` action. Counters tell how many requests arrived and how many were faulted,
//! so tests can assert the retry count of the client exactly.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Forward to the upstream server.
    Pass,
    /// Answer with this status and an S3 error body (`SlowDown` for 503, else `InternalError`).
    Status(u16),
    /// Read the request, then reset the connection (RST, no response).
    Reset,
    /// Read the request, then say nothing for this long, then close.
    Stall(Duration),
    /// Forward, then pass the response's head and only half its body, then close.
    Truncate,
}

struct State {
    script: Mutex<VecDeque<Action>>,
    then: Mutex<Action>,
    requests: AtomicUsize,
    faults: AtomicUsize,
    log: Mutex<Vec<String>>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub async fn start(upstream: &str, script: Vec<Action>, then: Action) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            then: Mutex::new(then),
            requests: AtomicUsize::new(0),
            faults: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let upstream = upstream.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(sock, &upstream, &st).await {
                        st.log
                            .lock()
                            .expect("log")
                            .push(format!("proxy error: {e}"));
                    }
                });
            }
        });
        FaultProxy { addr, state, task }
    }

    /// `127.0.0.1:PORT` to use as the S3 endpoint.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Appends actions to the script.
    pub fn push(&self, actions: &[Action]) {
        self.state.script.lock().expect("script").extend(actions);
    }

    /// Sets the action used once the script is exhausted.
    pub fn set_then(&self, a: Action) {
        *self.state.then.lock().expect("then") = a;
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests answered with a fault so far.
    pub fn faults(&self) -> usize {
        self.state.faults.load(Ordering::SeqCst)
    }

    /// `METHOD target -> action` for every request, in arrival order.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        self.state.requests.store(0, Ordering::SeqCst);
        self.state.faults.store(0, Ordering::SeqCst);
    }
}

async fn handle(mut client: TcpStream, upstream: &str, st: &State) -> std::io::Result<()> {
    // Read the head, then the body by Content-Length (object_store never sends chunked bodies).
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("request head too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(()); // client closed an idle connection
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut content_length = 0usize;
    let mut new_head = format!("{request_line}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") {
            return Err(std::io::Error::other("chunked requests are not supported"));
        }
        if !lower.starts_with("connection:") {
            new_head.push_str(line);
            new_head.push_str("\r\n");
        }
    }
    new_head.push_str("Connection: close\r\n\r\n");
    let mut body = buf[head_end..].to_vec();
    while body.len() < content_length {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("client closed mid-body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }

    st.requests.fetch_add(1, Ordering::SeqCst);
    let action = {
        let next = st.script.lock().expect("script").pop_front();
        next.unwrap_or(*st.then.lock().expect("then"))
    };
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    st.log
        .lock()
        .expect("log")
        .push(format!("{method} {target} -> {action:?}"));
    if action != Action::Pass {
        st.faults.fetch_add(1, Ordering::SeqCst);
    }

    match action {
        Action::Pass => {
            let mut up = TcpStream::connect(upstream).await?;
            up.write_all(new_head.as_bytes()).await?;
            up.write_all(&body).await?;
            tokio::io::copy(&mut up, &mut client).await?;
            client.shutdown().await?;
        }
        Action::Status(code) => {
            let (reason, s3code) = match code {
                503 => ("Service Unavailable", "SlowDown"),
                403 => ("Forbidden", "AccessDenied"),
                _ => ("Internal Server Error", "InternalError"),
            };
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{s3code}</Code>\
                 <Message>injected by the test proxy</Message></Error>"
            );
            let body = if method == "HEAD" { String::new() } else { xml };
            let resp = format!(
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(resp.as_bytes()).await?;
            client.shutdown().await?;
        }
        Action::Reset => {
            client.set_zero_linger()?;
            drop(client);
        }
        Action::Stall(d) => {
            tokio::time::sleep(d).await;
            drop(client);
        }
        Action::Truncate => {
            let mut up = TcpStream::connect(upstream).await?;
            up.write_all(new_head.as_bytes()).await?;
            up.write_all(&body).await?;
            let mut resp = Vec::new();
            up.read_to_end(&mut resp).await?;
            let head_end = resp
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(resp.len(), |p| p + 4);
            let keep = head_end + (resp.len() - head_end) / 2;
            client.write_all(&resp[..keep]).await?;
            client.shutdown().await?;
        }
    }
    Ok(())
}
