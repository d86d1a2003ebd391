//! Container logs: the CRI log file format and reading it with the
//! semantics of `PodLogOptions` (what `kubectl logs` asks the kubelet for).
//!
//! The runtime writes one line per chunk of container output:
//! `<RFC3339Nano timestamp> <stdout|stderr> <P|F>[:more tags] <message>`; `P`
//! marks a partial line continued by the next entry, `F` a full line (the
//! newline is not stored). Files live at
//! `<podLogsDir>/<ns>_<pod>_<uid>/<container>/<restartCount>.log`.
//!
//! [`read_logs`] streams a file as upstream's kuberuntime log reader does:
//! `tailLines` counts file lines from the end, `since*` skips older entries,
//! `timestamps` prefixes each output line with its timestamp, `limitBytes`
//! cuts the output, and `follow` keeps reading as the file grows (and across
//! a rotation to a new file) until the container is no longer running.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Which output stream a log entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdout,
    Stderr,
}

/// One parsed CRI log entry. `content` carries the trailing newline for full
/// (`F`) entries and none for partial (`P`) ones, so concatenating the
/// contents of consecutive entries restores the container's output.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub timestamp: DateTime<FixedOffset>,
    pub stream: StreamKind,
    pub partial: bool,
    pub content: Vec<u8>,
}

/// Parse one line of a CRI log file (with or without its trailing `\n`).
pub fn parse_cri_line(line: &[u8]) -> Result<LogEntry, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut rest = line;
    let mut next_field = |what: &str| -> Result<&[u8], String> {
        match rest.iter().position(|b| *b == b' ') {
            Some(i) => {
                let f = &rest[..i];
                rest = &rest[i + 1..];
                Ok(f)
            }
            None => Err(format!("{what} is not found")),
        }
    };
    let ts = next_field("timestamp")?;
    let ts = std::str::from_utf8(ts).map_err(|_| "unexpected timestamp format".to_string())?;
    let timestamp = DateTime::parse_from_rfc3339(ts)
        .map_err(|e| format!("unexpected timestamp format {ts:?}: {e}"))?;
    let stream = match next_field("stream type")? {
        b"stdout" => StreamKind::Stdout,
        b"stderr" => StreamKind::Stderr,
        other => {
            return Err(format!(
                "unexpected stream type {:?}",
                String::from_utf8_lossy(other)
            ))
        }
    };
    // Tags are ':'-separated; the first one says partial or full.
    let tags = next_field("log tag")?;
    let first = tags.split(|b| *b == b':').next().unwrap_or_default();
    let partial = match first {
        b"P" => true,
        b"F" => false,
        other => {
            return Err(format!(
                "unexpected log tag {:?}",
                String::from_utf8_lossy(other)
            ))
        }
    };
    let mut content = rest.to_vec();
    if !partial {
        content.push(b'\n');
    }
    Ok(LogEntry {
        timestamp,
        stream,
        partial,
        content,
    })
}

/// Go's `time.RFC3339Nano` rendering: fractional seconds without trailing
/// zeros (none at all when zero), `Z` for a zero offset.
pub fn format_rfc3339_nano(t: &DateTime<FixedOffset>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos() % 1_000_000_000;
    let mut frac = String::new();
    if nanos != 0 {
        frac = format!(".{nanos:09}");
        while frac.ends_with('0') {
            frac.pop();
        }
    }
    let off = t.offset().local_minus_utc();
    let zone = if off == 0 {
        "Z".to_string()
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.abs();
        format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    };
    format!("{base}{frac}{zone}")
}

/// Which streams to return (`PodLogOptions.stream`, split-stream logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamSelect {
    #[default]
    All,
    Stdout,
    Stderr,
}

/// `PodLogOptions` as the kubelet's `/containerLogs` endpoint takes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<DateTime<Utc>>,
    pub limit_bytes: Option<i64>,
    pub stream: Option<StreamSelect>,
}

/// Query values keep only the first occurrence of each key, as upstream's
/// parameter codec does for scalar fields.
fn first_values(query: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        m.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    m
}

/// Upstream's query-parameter bool: absent = false; "0"/"false" = false; any
/// other value (including empty) = true.
fn query_bool(m: &HashMap<String, String>, k: &str) -> bool {
    match m.get(k) {
        None => false,
        Some(v) => !(v == "0" || v.eq_ignore_ascii_case("false")),
    }
}

fn query_i64(m: &HashMap<String, String>, k: &str) -> Result<Option<i64>, String> {
    match m.get(k).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax")),
    }
}

impl LogOptions {
    /// Decode the query string (`follow`, `previous`, `timestamps`,
    /// `tailLines` (or the legacy `tail`, where `all` means no limit),
    /// `sinceSeconds`, `sinceTime` (RFC 3339), `limitBytes`, `stream`).
    pub fn from_query(query: &str) -> Result<LogOptions, String> {
        let mut m = first_values(query);
        if let Some(tail) = m.get("tail").cloned().filter(|t| !t.is_empty()) {
            if tail == "all" {
                m.remove("tailLines");
            } else {
                m.insert("tailLines".into(), tail);
            }
        }
        let since_time = match m.get("sinceTime").map(String::as_str) {
            None | Some("") => None,
            Some(s) => Some(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| format!("parsing time {s:?}: {e}"))?
                    .with_timezone(&Utc),
            ),
        };
        let stream = match m.get("stream").map(String::as_str) {
            None | Some("") => None,
            Some("All") => Some(StreamSelect::All),
            Some("Stdout") => Some(StreamSelect::Stdout),
            Some("Stderr") => Some(StreamSelect::Stderr),
            Some(other) => {
                return Err(format!(
                    "stream: Unsupported value: {other:?}: supported values: \"All\", \"Stderr\", \"Stdout\""
                ))
            }
        };
        Ok(LogOptions {
            follow: query_bool(&m, "follow"),
            previous: query_bool(&m, "previous"),
            timestamps: query_bool(&m, "timestamps"),
            tail_lines: query_i64(&m, "tailLines")?,
            since_seconds: query_i64(&m, "sinceSeconds")?,
            since_time,
            limit_bytes: query_i64(&m, "limitBytes")?,
            stream,
        })
    }

    /// Upstream's `ValidatePodLogOptions`, as `(field, message)` pairs.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(t) = self.tail_lines.filter(|t| *t < 0) {
            errs.push(format!(
                "tailLines: Invalid value: {t}: must be greater than or equal to 0"
            ));
        }
        if let Some(b) = self.limit_bytes.filter(|b| *b < 1) {
            errs.push(format!(
                "limitBytes: Invalid value: {b}: must be greater than 0"
            ));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => errs.push(
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            ),
            (Some(s), None) if s < 1 => errs.push(format!(
                "sinceSeconds: Invalid value: {s}: must be greater than 0"
            )),
            _ => {}
        }
        errs
    }

    /// The earliest timestamp to return, if any.
    pub fn since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(t) = self.since_time {
            return Some(t);
        }
        self.since_seconds
            .map(|s| now - chrono::Duration::seconds(s.clamp(0, 100 * 365 * 86400)))
    }
}

/// The log directory of a pod: `<podLogsDir>/<ns>_<name>_<uid>`.
pub fn pod_log_dir(pod_logs_dir: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    pod_logs_dir.join(format!("{namespace}_{name}_{uid}"))
}

/// The log file of one container attempt: `<container>/<restartCount>.log`
/// under the pod's log directory.
pub fn container_log_path(pod_dir: &Path, container: &str, restart_count: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{restart_count}.log"))
}

/// The attempts that have a log file for a container, newest last.
pub fn container_attempts(pod_dir: &Path, container: &str) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(pod_dir.join(container))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".log"))
                        .and_then(|n| n.parse::<u32>().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

const TAIL_BLOCK: u64 = 4096;

/// The offset where the last `n` lines of a file start (upstream's
/// `FindTailLineStartIndex`); `None` means the whole file.
pub fn tail_start<F: Read + Seek>(f: &mut F, n: Option<i64>) -> std::io::Result<u64> {
    let Some(n) = n else { return Ok(0) };
    if n < 0 {
        return Ok(0);
    }
    let n = n as u64;
    let size = f.seek(SeekFrom::End(0))?;
    let mut count: u64 = 0;
    let mut left: u64 = 0;
    let mut buf: Vec<u8> = Vec::new();
    let mut right = size;
    while right > 0 && count <= n {
        left = right.saturating_sub(TAIL_BLOCK);
        buf.resize((right - left) as usize, 0);
        f.seek(SeekFrom::Start(left))?;
        f.read_exact(&mut buf)?;
        count += buf.iter().filter(|b| **b == b'\n').count() as u64;
        right = left;
    }
    let mut start = 0usize;
    while count > n {
        match buf[start..].iter().position(|b| *b == b'\n') {
            Some(i) => {
                start += i + 1;
                count -= 1;
            }
            None => break,
        }
    }
    Ok(left + start as u64)
}

/// Says whether the container is still running (followed logs stop once it is not).
pub type RunningCheck = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// Formats parsed entries into client output (since, timestamps, limitBytes, stream).
struct Writer {
    since: Option<DateTime<Utc>>,
    timestamps: bool,
    stream: StreamSelect,
    remaining: i64,
    /// Whether the next output starts a new line (for the timestamp prefix).
    at_line_start: bool,
    out: Vec<u8>,
}

impl Writer {
    fn new(opts: &LogOptions, now: DateTime<Utc>) -> Self {
        Writer {
            since: opts.since(now),
            timestamps: opts.timestamps,
            stream: opts.stream.unwrap_or_default(),
            remaining: opts.limit_bytes.unwrap_or(i64::MAX),
            at_line_start: true,
            out: Vec::new(),
        }
    }

    /// Append one entry; returns false once the byte limit is reached.
    fn write(&mut self, e: &LogEntry) -> bool {
        let starts_line = self.at_line_start;
        self.at_line_start = !e.partial;
        if self
            .since
            .is_some_and(|s| e.timestamp.with_timezone(&Utc) < s)
        {
            return true;
        }
        match (self.stream, e.stream) {
            (StreamSelect::Stdout, StreamKind::Stderr)
            | (StreamSelect::Stderr, StreamKind::Stdout) => return true,
            _ => {}
        }
        let mut line = Vec::with_capacity(e.content.len() + 36);
        if self.timestamps && starts_line {
            line.extend_from_slice(format_rfc3339_nano(&e.timestamp).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&e.content);
        if line.len() as i64 > self.remaining {
            line.truncate(self.remaining.max(0) as usize);
        }
        self.remaining -= line.len() as i64;
        self.out.extend_from_slice(&line);
        self.remaining > 0
    }

    fn take(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(Bytes::from(std::mem::take(&mut self.out)))
        }
    }
}

/// Output is sent in chunks of about this size (and whenever the reader waits).
const FLUSH_BYTES: usize = 32 * 1024;
/// How often a followed file is checked for new data.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often a follower asks whether the container still runs.
const RUNNING_CHECK_PERIOD: Duration = Duration::from_secs(1);

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// Stream a CRI log file with `opts` applied. Errors opening the file are
/// returned at once; later errors end the stream. The reader stops when the
/// receiver is dropped (the client went away).
pub async fn read_logs(
    path: PathBuf,
    opts: LogOptions,
    running: RunningCheck,
) -> std::io::Result<ReceiverStream<std::io::Result<Bytes>>> {
    let resolved = tokio::fs::canonicalize(&path).await.unwrap_or(path.clone());
    let mut std_file = std::fs::File::open(&resolved)?;
    let tail = opts.tail_lines;
    let (std_file, start) = tokio::task::spawn_blocking(move || {
        let start = tail_start(&mut std_file, tail);
        start.map(|s| (std_file, s))
    })
    .await
    .map_err(std::io::Error::other)??;
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
    tokio::spawn(async move {
        if let Err(e) = pump(resolved, std_file, start, opts, running, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(ReceiverStream::new(rx))
}

async fn pump(
    path: PathBuf,
    file: std::fs::File,
    start: u64,
    opts: LogOptions,
    running: RunningCheck,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> std::io::Result<()> {
    let mut id = file.metadata().map(|m| file_id(&m)).ok();
    let mut file = tokio::fs::File::from_std(file);
    file.seek(SeekFrom::Start(start)).await?;
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, file);
    let mut offset = start;
    let mut w = Writer::new(&opts, Utc::now());
    // Without follow, tailLines also bounds the number of entries returned.
    let mut limited = if opts.follow { None } else { opts.tail_lines };
    let mut line: Vec<u8> = Vec::new();
    let mut still_running = true;
    let mut last_check: Option<Instant> = None;
    let mut switch_pending = false;
    loop {
        if limited == Some(0) {
            break;
        }
        let n = reader.read_until(b'\n', &mut line).await?;
        offset += n as u64;
        let complete = line.last() == Some(&b'\n');
        if !complete {
            // End of the data written so far.
            if !opts.follow {
                if !line.is_empty() {
                    tracing::debug!(path = %path.display(), "incomplete line at the end of a log file");
                    if let Ok(e) = parse_cri_line(&line) {
                        w.write(&e);
                    }
                }
                break;
            }
            if let Some(b) = w.take() {
                if tx.send(Ok(b)).await.is_err() {
                    return Ok(());
                }
            }
            if !still_running {
                // The container had stopped and everything written is consumed.
                break;
            }
            if switch_pending {
                // The rotated-away file is drained: continue with the new one.
                switch_pending = false;
                if let Ok(f) = tokio::fs::File::open(&path).await {
                    id = f.metadata().await.map(|m| file_id(&m)).ok();
                    reader = tokio::io::BufReader::with_capacity(64 * 1024, f);
                    offset = 0;
                    line.clear();
                }
                continue;
            }
            if tx.is_closed() {
                return Ok(());
            }
            if last_check.is_none_or(|t| t.elapsed() >= RUNNING_CHECK_PERIOD) {
                last_check = Some(Instant::now());
                if !running().await {
                    // Read what is left once more, then stop.
                    still_running = false;
                    continue;
                }
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            // A rotation replaces the file at `path`: drain the old one, then
            // switch. A truncation starts over at the beginning.
            match tokio::fs::metadata(&path).await {
                Ok(m) if Some(file_id(&m)) != id => switch_pending = true,
                Ok(m) if m.len() < offset => {
                    reader.seek(SeekFrom::Start(0)).await?;
                    offset = 0;
                    line.clear();
                }
                _ => {}
            }
            continue;
        }
        match parse_cri_line(&line) {
            Ok(e) => {
                if !w.write(&e) {
                    break;
                }
                if let Some(l) = limited.as_mut() {
                    *l -= 1;
                }
            }
            Err(err) => {
                tracing::debug!(path = %path.display(), error = %err, "skipping malformed log line")
            }
        }
        line.clear();
        if w.out.len() >= FLUSH_BYTES {
            if let Some(b) = w.take() {
                if tx.send(Ok(b)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    if let Some(b) = w.take() {
        let _ = tx.send(Ok(b)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn always(v: bool) -> RunningCheck {
        Arc::new(move || Box::pin(async move { v }))
    }

    async fn collect(path: &Path, opts: LogOptions) -> String {
        let mut s = read_logs(path.to_path_buf(), opts, always(false))
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(b) = s.next().await {
            out.extend_from_slice(&b.unwrap());
        }
        String::from_utf8(out).unwrap()
    }

    const SAMPLE: &str = "2024-01-01T00:00:01.000000001Z stdout F one\n\
2024-01-01T00:00:02Z stderr F two\n\
2024-01-01T00:00:03.5Z stdout P thr\n\
2024-01-01T00:00:03.6Z stdout F ee\n\
2024-01-01T00:00:04+02:00 stdout F four\n";

    fn sample_file() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        std::fs::write(&p, SAMPLE).unwrap();
        (d, p)
    }

    #[test]
    fn parses_cri_lines() {
        let e = parse_cri_line(b"2024-01-01T00:00:01.5Z stdout F hello world\n").unwrap();
        assert_eq!(e.stream, StreamKind::Stdout);
        assert!(!e.partial);
        assert_eq!(e.content, b"hello world\n");
        let e = parse_cri_line(b"2024-01-01T00:00:01Z stderr P:x part").unwrap();
        assert_eq!(e.stream, StreamKind::Stderr);
        assert!(e.partial);
        assert_eq!(e.content, b"part");
        // An empty message is fine.
        assert_eq!(
            parse_cri_line(b"2024-01-01T00:00:01Z stdout F ")
                .unwrap()
                .content,
            b"\n"
        );
        assert!(parse_cri_line(b"garbage").is_err());
        assert!(parse_cri_line(b"2024-01-01T00:00:01Z stdin F x").is_err());
        assert!(parse_cri_line(b"notatime stdout F x").is_err());
        assert!(parse_cri_line(b"2024-01-01T00:00:01Z stdout X x").is_err());
    }

    #[test]
    fn formats_like_go_rfc3339nano() {
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:01.500000000Z").unwrap();
        assert_eq!(format_rfc3339_nano(&t), "2024-01-01T00:00:01.5Z");
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:01+02:00").unwrap();
        assert_eq!(format_rfc3339_nano(&t), "2024-01-01T00:00:01+02:00");
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:01.000000001-05:30").unwrap();
        assert_eq!(
            format_rfc3339_nano(&t),
            "2024-01-01T00:00:01.000000001-05:30"
        );
    }

    #[test]
    fn options_from_query_and_validation() {
        let o = LogOptions::from_query(
            "follow=true&previous=1&timestamps&tailLines=10&limitBytes=5&sinceSeconds=3",
        )
        .unwrap();
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!(
            (o.tail_lines, o.limit_bytes, o.since_seconds),
            (Some(10), Some(5), Some(3))
        );
        assert!(o.validate().is_empty());
        let o = LogOptions::from_query("follow=false&tail=all&tailLines=3").unwrap();
        assert!(!o.follow);
        assert_eq!(o.tail_lines, None);
        let o = LogOptions::from_query("tail=7").unwrap();
        assert_eq!(o.tail_lines, Some(7));
        assert!(LogOptions::from_query("tailLines=x").is_err());
        assert!(LogOptions::from_query("sinceTime=yesterday").is_err());
        let o = LogOptions::from_query("sinceTime=2024-01-01T00:00:00Z").unwrap();
        assert!(o.since_time.is_some());
        let bad = LogOptions::from_query("tailLines=-1&limitBytes=0&sinceSeconds=0").unwrap();
        assert_eq!(
            bad.validate(),
            vec![
                "tailLines: Invalid value: -1: must be greater than or equal to 0".to_string(),
                "limitBytes: Invalid value: 0: must be greater than 0".to_string(),
                "sinceSeconds: Invalid value: 0: must be greater than 0".to_string(),
            ]
        );
        let both = LogOptions::from_query("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z").unwrap();
        assert_eq!(both.validate().len(), 1);
    }

    #[test]
    fn tail_start_finds_last_lines() {
        let data = b"a\nb\nc\nd\n";
        let mut c = std::io::Cursor::new(&data[..]);
        assert_eq!(tail_start(&mut c, Some(2)).unwrap(), 4);
        assert_eq!(tail_start(&mut c, Some(0)).unwrap(), 8);
        assert_eq!(tail_start(&mut c, Some(10)).unwrap(), 0);
        assert_eq!(tail_start(&mut c, None).unwrap(), 0);
        // Across block boundaries.
        let big: Vec<u8> = (0..3000)
            .flat_map(|i| format!("line{i}\n").into_bytes())
            .collect();
        let mut c = std::io::Cursor::new(&big[..]);
        let s = tail_start(&mut c, Some(1500)).unwrap() as usize;
        assert!(big[s..].starts_with(b"line1500\n"));
        let mut c = std::io::Cursor::new(&b""[..]);
        assert_eq!(tail_start(&mut c, Some(3)).unwrap(), 0);
    }

    #[tokio::test]
    async fn reads_with_options() {
        let (_d, p) = sample_file();
        assert_eq!(
            collect(&p, LogOptions::default()).await,
            "one\ntwo\nthree\nfour\n"
        );
        let ts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            collect(&p, ts).await,
            "2024-01-01T00:00:01.000000001Z one\n2024-01-01T00:00:02Z two\n2024-01-01T00:00:03.5Z three\n2024-01-01T00:00:04+02:00 four\n"
        );
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(collect(&p, tail).await, "ee\nfour\n");
        let tail0 = LogOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(collect(&p, tail0).await, "");
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(collect(&p, limit).await, "one\ntw");
        let since = LogOptions {
            since_time: Some("2024-01-01T00:00:02Z".parse().unwrap()),
            ..Default::default()
        };
        // 00:00:04+02:00 is 22:00:04Z the day before: too old.
        assert_eq!(collect(&p, since).await, "two\nthree\n");
        let stderr = LogOptions {
            stream: Some(StreamSelect::Stderr),
            ..Default::default()
        };
        assert_eq!(collect(&p, stderr).await, "two\n");
    }

    #[tokio::test]
    async fn missing_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_logs(
            d.path().join("nope.log"),
            LogOptions::default(),
            always(false)
        )
        .await
        .is_err());
    }

    #[tokio::test]
    async fn follows_growth_and_rotation_until_the_container_stops() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        std::fs::write(&p, "2024-01-01T00:00:01Z stdout F first\n").unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        let a = alive.clone();
        let check: RunningCheck = Arc::new(move || {
            let v = a.load(Ordering::SeqCst);
            Box::pin(async move { v })
        });
        let opts = LogOptions {
            follow: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        let mut s = read_logs(p.clone(), opts, check).await.unwrap();
        let first = s.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"first\n");
        // Growth, including a line written in two pieces.
        {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"2024-01-01T00:00:02Z stdout F sec").unwrap();
            f.flush().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"ond\n").unwrap();
        }
        let b = s.next().await.unwrap().unwrap();
        assert_eq!(&b[..], b"second\n");
        // Rotation: the file is renamed away and a new one written.
        std::fs::rename(&p, d.path().join("0.log.1")).unwrap();
        std::fs::write(&p, "2024-01-01T00:00:03Z stdout F third\n").unwrap();
        let b = s.next().await.unwrap().unwrap();
        assert_eq!(&b[..], b"third\n");
        alive.store(false, Ordering::SeqCst);
        let rest = tokio::time::timeout(Duration::from_secs(5), async {
            let mut out = Vec::new();
            while let Some(b) = s.next().await {
                out.extend_from_slice(&b.unwrap());
            }
            out
        })
        .await
        .expect("follow ends once the container stopped");
        assert!(rest.is_empty());
    }

    #[test]
    fn attempt_paths() {
        let d = tempfile::tempdir().unwrap();
        let pod = pod_log_dir(d.path(), "default", "web", "u1");
        assert!(pod.ends_with("default_web_u1"));
        std::fs::create_dir_all(pod.join("c")).unwrap();
        for n in [0, 2, 1] {
            std::fs::write(container_log_path(&pod, "c", n), "").unwrap();
        }
        std::fs::write(pod.join("c").join("junk"), "").unwrap();
        assert_eq!(container_attempts(&pod, "c"), vec![0, 1, 2]);
        assert!(container_attempts(&pod, "none").is_empty());
    }
}
