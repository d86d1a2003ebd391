//! test-server: a small network server for end-to-end tests (image
//! `docker.io/ferrokube/test-server:latest`, see hack/images/README.md).
//!
//! - HTTP on `--http-port` (8080): `/`, `/hostname`, `/echo?msg=`, `/healthz`,
//!   `/readyz`, `/fail`, `/recover`, `/unready`, `/ready`, `/exit?code=`,
//!   `/sleep?duration=`, `/status?code=`, `/clientip`, `/header?key=`, `/headers`.
//! - TCP line echo on `--tcp-port` (8081): each line is echoed back; the line
//!   `hostname` is answered with the hostname.
//! - UDP echo on `--udp-port` (8082): each datagram is echoed back; `hostname`
//!   is answered with the hostname.
//!
//! A port of 0 disables that listener. Every request is logged to stdout.
//! SIGTERM and SIGINT make the server exit 0.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const MAX_LINE: usize = 64 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const USAGE: &str = "\
Usage: test-server [flags]

HTTP, TCP and UDP test server for ferrokube end-to-end tests.

Flags:
      --bind ADDR            address to listen on (default 0.0.0.0)
      --http-port PORT       HTTP port, 0 disables (default 8080)
      --tcp-port PORT        TCP line-echo port, 0 disables (default 8081)
      --udp-port PORT        UDP echo port, 0 disables (default 8082)
      --fail-after DURATION  /healthz returns 500 once DURATION has passed since start
      --ready-after DURATION /readyz returns 503 until DURATION has passed since start
  -h, --help                 print this help
      --version              print the version

HTTP endpoints:
  /, /hostname          the hostname
  /echo?msg=TEXT        TEXT (or the request body when msg is absent)
  /healthz              200 ok, or 500 after /fail or --fail-after
  /readyz               200 ok, or 503 after /unready or before --ready-after
  /fail, /recover       make /healthz fail, or succeed again
  /unready, /ready      make /readyz fail, or succeed again
  /exit?code=N          answer, then exit with code N (default 0)
  /sleep?duration=D     answer after D (e.g. 500ms, 2s, 1m; a bare number is seconds)
  /status?code=N        answer with HTTP status N
  /clientip             the client's address (ip:port)
  /header?key=NAME      the value of request header NAME
  /headers              every request header, one per line
";

struct Options {
    bind: std::net::IpAddr,
    http_port: u16,
    tcp_port: u16,
    udp_port: u16,
    fail_after: Option<Duration>,
    ready_after: Option<Duration>,
}

struct State {
    start: Instant,
    failing: AtomicBool,
    unready: AtomicBool,
    fail_after: Option<Duration>,
    ready_after: Option<Duration>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        bind: std::net::IpAddr::from([0, 0, 0, 0]),
        http_port: 8080,
        tcp_port: 8081,
        udp_port: 8082,
        fail_after: None,
        ready_after: None,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        if arg == "--version" {
            println!("test-server {VERSION}");
            std::process::exit(0);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let name = name.trim_start_matches('-');
        if !arg.starts_with('-') {
            return Err(format!("unexpected argument {arg:?}"));
        }
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => args
                    .next()
                    .ok_or_else(|| format!("flag needs an argument: --{name}")),
            }
        };
        let port = |v: String| -> Result<u16, String> {
            v.parse::<u16>()
                .map_err(|_| format!("invalid port {v:?} for --{name}"))
        };
        match name {
            "bind" => {
                let v = value()?;
                o.bind = v
                    .parse()
                    .map_err(|_| format!("invalid address {v:?} for --bind"))?;
            }
            "http-port" => o.http_port = port(value()?)?,
            "tcp-port" => o.tcp_port = port(value()?)?,
            "udp-port" => o.udp_port = port(value()?)?,
            "fail-after" => {
                let v = value()?;
                o.fail_after =
                    Some(parse_duration(&v).ok_or_else(|| format!("invalid duration {v:?}"))?);
            }
            "ready-after" => {
                let v = value()?;
                o.ready_after =
                    Some(parse_duration(&v).ok_or_else(|| format!("invalid duration {v:?}"))?);
            }
            _ => return Err(format!("unknown flag: {arg}")),
        }
    }
    Ok(o)
}

/// Parses a Go-style duration ("1h2m3.5s", "250ms", "10us"); a bare number
/// is seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn hostname() -> String {
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            return h.to_string();
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_string())
}

/// Current UTC time as RFC 3339 with milliseconds.
fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        d.subsec_millis()
    )
}

fn log(msg: std::fmt::Arguments<'_>) {
    println!("{} {}", now(), msg);
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

struct Request {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            conn.contains("keep-alive")
        } else {
            !conn.contains("close")
        }
    }
}

struct Response {
    status: u16,
    body: Vec<u8>,
    /// Exit the process with this code once the response is sent.
    exit: Option<i32>,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            body: body.into().into_bytes(),
            exit: None,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Reads one request from the connection. `Ok(None)` is a clean EOF before
/// any byte of a new request.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<Request>, (u16, String)> {
    let head_end = loop {
        if let Some(pos) = find_head_end(buf) {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err((431, "request header too large".into()));
        }
        let mut chunk = [0u8; 8192];
        let n = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return Ok(None),
        };
        if n == 0 {
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok(None);
            }
            return Err((400, "incomplete request".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let (head_len, sep_len) = head_end;
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    buf.drain(..head_len + sep_len);

    let mut lines = head.lines().skip_while(|l| l.trim().is_empty());
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) if v.starts_with("HTTP/") => {
            (m.to_string(), t.to_string(), v.to_string())
        }
        _ => return Err((400, "malformed request line".into())),
    };
    let mut headers = Vec::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = Request {
        method,
        target,
        version,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|te| !te.eq_ignore_ascii_case("identity"))
    {
        return Err((501, "chunked request bodies are not supported".into()));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| (400, "invalid Content-Length".to_string()))?,
    };
    if len > MAX_BODY {
        return Err((413, "request body too large".into()));
    }
    while buf.len() < len {
        let mut chunk = [0u8; 8192];
        let n = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Err((400, "incomplete request body".into())),
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    req.body = buf.drain(..len).collect();
    Ok(Some(req))
}

/// Position and length of the blank line ending the request head.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    for i in 0..buf.len() {
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        if buf[i..].starts_with(b"\n\n") {
            return Some((i, 2));
        }
    }
    None
}

async fn handle(req: &Request, peer: SocketAddr, state: &State) -> Response {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let param = |k: &str| query_param(query, k);
    match path {
        "/" | "/hostname" => Response::text(200, hostname()),
        "/echo" => match param("msg") {
            Some(m) => Response::text(200, m),
            None => Response {
                status: 200,
                body: req.body.clone(),
                exit: None,
            },
        },
        "/healthz" | "/livez" => {
            let expired = state.fail_after.is_some_and(|d| state.start.elapsed() >= d);
            if state.failing.load(Ordering::Relaxed) || expired {
                Response::text(500, "failing")
            } else {
                Response::text(200, "ok")
            }
        }
        "/readyz" => {
            let early = state.ready_after.is_some_and(|d| state.start.elapsed() < d);
            if state.unready.load(Ordering::Relaxed) || early {
                Response::text(503, "not ready")
            } else {
                Response::text(200, "ok")
            }
        }
        "/fail" => {
            state.failing.store(true, Ordering::Relaxed);
            Response::text(200, "healthz now fails")
        }
        "/recover" => {
            state.failing.store(false, Ordering::Relaxed);
            Response::text(200, "healthz now succeeds")
        }
        "/unready" => {
            state.unready.store(true, Ordering::Relaxed);
            Response::text(200, "readyz now fails")
        }
        "/ready" => {
            state.unready.store(false, Ordering::Relaxed);
            Response::text(200, "readyz now succeeds")
        }
        "/exit" => {
            let code = param("code").unwrap_or_default();
            let code = if code.is_empty() {
                Ok(0)
            } else {
                code.parse::<i32>()
            };
            match code {
                Ok(c) if (0..=255).contains(&c) => Response {
                    status: 200,
                    body: format!("exiting with code {c}").into_bytes(),
                    exit: Some(c),
                },
                _ => Response::text(400, "code must be an integer in 0..255"),
            }
        }
        "/sleep" => {
            let d = param("duration").unwrap_or_else(|| "1s".into());
            match parse_duration(&d) {
                Some(dur) => {
                    tokio::time::sleep(dur).await;
                    Response::text(200, format!("slept {d}"))
                }
                None => Response::text(400, format!("invalid duration {d:?}")),
            }
        }
        "/status" => match param("code").and_then(|c| c.parse::<u16>().ok()) {
            Some(c) if (100..=599).contains(&c) && c != 101 => {
                Response::text(c, format!("status {c}"))
            }
            _ => Response::text(400, "code must be an HTTP status code"),
        },
        "/clientip" => Response::text(200, peer.to_string()),
        "/header" => match param("key") {
            Some(k) => Response::text(200, req.header(&k).unwrap_or("")),
            None => Response::text(400, "missing key parameter"),
        },
        "/headers" => {
            let mut s = String::new();
            for (k, v) in &req.headers {
                s.push_str(&format!("{k}: {v}\n"));
            }
            Response::text(200, s)
        }
        _ => Response::text(404, "404 page not found"),
    }
}

async fn write_response(
    stream: &mut TcpStream,
    resp: &Response,
    head_only: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    stream.write_all(&out).await?;
    stream.flush().await
}

async fn serve_http_conn(mut stream: TcpStream, peer: SocketAddr, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let req = match read_request(&mut stream, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err((status, msg)) => {
                log(format_args!("{peer} bad request: {msg}"));
                let _ =
                    write_response(&mut stream, &Response::text(status, msg), false, false).await;
                return;
            }
        };
        let resp = handle(&req, peer, &state).await;
        let keep_alive = req.keep_alive() && resp.exit.is_none();
        log(format_args!(
            "{peer} \"{} {} {}\" {} {}",
            req.method,
            req.target,
            req.version,
            resp.status,
            resp.body.len()
        ));
        let res = write_response(&mut stream, &resp, req.method == "HEAD", keep_alive).await;
        if let Some(code) = resp.exit {
            let _ = stream.shutdown().await;
            log(format_args!("exiting with code {code} as requested"));
            std::process::exit(code);
        }
        if res.is_err() || !keep_alive {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

async fn run_http(listener: TcpListener, state: Arc<State>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve_http_conn(stream, peer, state.clone()));
            }
            Err(e) => {
                log(format_args!("http accept: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn echo_reply(msg: &[u8]) -> Vec<u8> {
    let trimmed = msg.strip_suffix(b"\n").unwrap_or(msg);
    let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
    if trimmed == b"hostname" {
        let mut h = hostname().into_bytes();
        if msg.ends_with(b"\n") {
            h.push(b'\n');
        }
        h
    } else {
        msg.to_vec()
    }
}

async fn serve_tcp_conn(stream: TcpStream, peer: SocketAddr) {
    log(format_args!("tcp {peer} connected"));
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut rd).take(MAX_LINE as u64).read_until(b'\n', &mut line),
        )
        .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {
                let reply = echo_reply(&line);
                log(format_args!(
                    "tcp {peer} {:?}",
                    String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line))
                ));
                if wr.write_all(&reply).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
    log(format_args!("tcp {peer} closed"));
}

async fn run_tcp(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve_tcp_conn(stream, peer));
            }
            Err(e) => {
                log(format_args!("tcp accept: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn run_udp(sock: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                let msg = &buf[..n];
                log(format_args!(
                    "udp {peer} {:?}",
                    String::from_utf8_lossy(msg.strip_suffix(b"\n").unwrap_or(msg))
                ));
                if let Err(e) = sock.send_to(&echo_reply(msg), peer).await {
                    log(format_args!("udp send to {peer}: {e}"));
                }
            }
            Err(e) => {
                log(format_args!("udp recv: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => tokio::select! {
            _ = t.recv() => "SIGTERM",
            _ = i.recv() => "SIGINT",
        },
        _ => std::future::pending().await,
    }
}

async fn run(opts: Options) -> Result<(), String> {
    let state = Arc::new(State {
        start: Instant::now(),
        failing: AtomicBool::new(false),
        unready: AtomicBool::new(false),
        fail_after: opts.fail_after,
        ready_after: opts.ready_after,
    });
    let mut tasks = tokio::task::JoinSet::new();
    if opts.http_port != 0 {
        let addr = SocketAddr::new(opts.bind, opts.http_port);
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listen on {addr} (http): {e}"))?;
        log(format_args!("serving HTTP on {addr}"));
        tasks.spawn(run_http(l, state.clone()));
    }
    if opts.tcp_port != 0 {
        let addr = SocketAddr::new(opts.bind, opts.tcp_port);
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listen on {addr} (tcp): {e}"))?;
        log(format_args!("serving TCP echo on {addr}"));
        tasks.spawn(run_tcp(l));
    }
    if opts.udp_port != 0 {
        let addr = SocketAddr::new(opts.bind, opts.udp_port);
        let s = UdpSocket::bind(addr)
            .await
            .map_err(|e| format!("listen on {addr} (udp): {e}"))?;
        log(format_args!("serving UDP echo on {addr}"));
        tasks.spawn(run_udp(s));
    }
    let sig = shutdown_signal().await;
    log(format_args!("received {sig}, shutting down"));
    tasks.abort_all();
    Ok(())
}

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("test-server: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("test-server: starting runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(opts)) {
        eprintln!("test-server: {e}");
        std::process::exit(1);
    }
    rt.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5y"), None);
        assert_eq!(parse_duration("-1"), None);
    }

    #[test]
    fn decode() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(query_param("msg=hi%21&x", "msg").as_deref(), Some("hi!"));
        assert_eq!(query_param("x&msg=", "msg").as_deref(), Some(""));
        assert_eq!(query_param("x", "msg"), None);
    }

    #[test]
    fn echo() {
        assert_eq!(echo_reply(b"abc\n"), b"abc\n");
        assert_eq!(
            echo_reply(b"hostname\n"),
            format!("{}\n", hostname()).into_bytes()
        );
        assert_eq!(echo_reply(b"hostname"), hostname().into_bytes());
    }

    #[test]
    fn args() {
        let o = parse_args(
            ["--http-port", "9000", "--tcp-port=0", "--fail-after", "10s"]
                .iter()
                .map(|s| s.to_string()),
        )
        .unwrap();
        assert_eq!((o.http_port, o.tcp_port, o.udp_port), (9000, 0, 8082));
        assert_eq!(o.fail_after, Some(Duration::from_secs(10)));
        assert!(parse_args(["--nope"].iter().map(|s| s.to_string())).is_err());
        assert!(parse_args(["--http-port"].iter().map(|s| s.to_string())).is_err());
    }

    #[test]
    fn time_format() {
        let t = now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
    }
}
