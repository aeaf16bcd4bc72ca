//! A TCP proxy in front of a test server that simulates an outage: once armed, after a given
//! number of bytes has passed in one direction, it cuts every open connection and closes each
//! new one at once, for a given time; then it forwards again. Plain threads and blocking
//! sockets, so tests that run the binaries need no runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Which bytes count towards the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (request bodies: a backup's uploads).
    Upload,
    /// Server to client (response bodies: a restore's downloads).
    Download,
}

#[derive(Default)]
struct State {
    up: AtomicU64,
    down: AtomicU64,
    /// (direction, byte count, outage length) of the armed trigger.
    trigger: Mutex<Option<(Direction, u64, Duration)>>,
    /// (start, end) of the last outage.
    outage: Mutex<Option<(Instant, Instant)>>,
    /// Connections closed at once because they came during the outage.
    refused: AtomicUsize,
    /// Open connections (both sides), cut when the outage starts.
    open: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

impl State {
    fn in_outage(&self) -> bool {
        let now = Instant::now();
        self.outage
            .lock()
            .unwrap()
            .is_some_and(|(s, e)| s <= now && now < e)
    }

    /// Counts `n` bytes; starts the outage when the armed trigger is reached.
    fn count(&self, dir: Direction, n: usize) {
        let counter = match dir {
            Direction::Upload => &self.up,
            Direction::Download => &self.down,
        };
        let total = counter.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        let mut trigger = self.trigger.lock().unwrap();
        if let Some((d, at, len)) = *trigger {
            if d == dir && total >= at {
                *trigger = None;
                let now = Instant::now();
                *self.outage.lock().unwrap() = Some((now, now + len));
                for s in self.open.lock().unwrap().drain(..) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// A running proxy; stops accepting when dropped.
pub struct OutageProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl OutageProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        let upstream = upstream.to_owned();
        thread::spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if st.in_outage() {
                    st.refused.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut open = st.open.lock().unwrap();
                    open.retain(|s| s.peer_addr().is_ok());
                    open.push(client.try_clone().expect("clone"));
                    open.push(server.try_clone().expect("clone"));
                }
                pipe(&st, &client, &server, Direction::Upload);
                pipe(&st, &server, &client, Direction::Download);
            }
        });
        OutageProxy { addr, state }
    }

    /// `host:port` clients connect to.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Arms one outage of `length`, starting once `after` more bytes went in `dir`.
    pub fn arm(&self, dir: Direction, after: u64, length: Duration) {
        let base = match dir {
            Direction::Upload => self.state.up.load(Ordering::SeqCst),
            Direction::Download => self.state.down.load(Ordering::SeqCst),
        };
        *self.state.trigger.lock().unwrap() = Some((dir, base + after, length));
        *self.state.outage.lock().unwrap() = None;
        self.state.refused.store(0, Ordering::SeqCst);
    }

    /// (start, end) of the outage, once it happened.
    pub fn outage(&self) -> Option<(Instant, Instant)> {
        *self.state.outage.lock().unwrap()
    }

    /// Connections closed at once during the outage (each a client attempt).
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        for s in self.state.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread, counting bytes; during an outage it cuts both.
fn pipe(st: &Arc<State>, from: &TcpStream, to: &TcpStream, dir: Direction) {
    let (mut from, mut to) = (
        from.try_clone().expect("clone"),
        to.try_clone().expect("clone"),
    );
    let st = Arc::clone(st);
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if st.in_outage() || to.write_all(&buf[..n]).is_err() {
                break;
            }
            st.count(dir, n);
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
