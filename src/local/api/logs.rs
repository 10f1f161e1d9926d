//! The `pods/{name}/log` subresource: what `kubectl logs [-f] [--previous] [--tail N]`
//! reads, served from the files the local runtime writes for each pod:
//!
//! - `<pods_dir>/<ns>_<pod>/log`: the container's stdout and stderr, appended across
//!   restarts;
//! - `<pods_dir>/<ns>_<pod>/log.starts`: one decimal byte offset per line, the length of
//!   `log` when each run of the container was launched. The current run is the bytes from
//!   the last offset on; the previous run the bytes between the last two offsets.
//!
//! The range to send is decided in pure code ([`select_run`], [`LogQuery`]); the HTTP
//! side only streams that byte range (and, with `follow`, what is appended later).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{header, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::error::ApiError;
/// The response body type the API serves (the same as `http::Body`, named here so this
/// module does not import the router that calls it).
type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::convert::Infallible>;

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Read size when streaming or scanning a log.
const CHUNK: usize = 64 * 1024;

/// The log request's parameters (query of `GET .../pods/{name}/log`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogQuery {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
}

impl LogQuery {
    pub fn parse(q: &HashMap<String, String>) -> Result<LogQuery, ApiError> {
        let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
        let num = |k: &str| -> Result<Option<u64>, ApiError> {
            match q.get(k).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .map(|n| Some(n.max(0) as u64))
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "invalid value {v:?} for {k}: not an integer"
                        ))
                    }),
            }
        };
        Ok(LogQuery {
            container: q.get("container").filter(|c| !c.is_empty()).cloned(),
            follow: flag("follow"),
            previous: flag("previous"),
            tail_lines: num("tailLines")?,
            limit_bytes: num("limitBytes")?.filter(|n| *n > 0),
        })
    }
}

/// The container the request is about: the named one (it must exist in the pod), else the
/// pod's only (or first, as the default-container annotation is not used here) container.
pub fn container_of(pod: &Value, q: &LogQuery) -> Result<String, ApiError> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match &q.container {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.clone()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None => names
            .first()
            .map(|n| n.to_string())
            .ok_or_else(|| ApiError::bad_request(format!("pod {pod_name} has no containers"))),
    }
}

/// Offsets from a `log.starts` text (unparsable lines are skipped).
pub fn parse_starts(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .collect()
}

/// The byte range of the requested run: `(start, Some(end))` for the previous run,
/// `(start, None)` for the current one (up to the end of the file, which may grow).
/// None when there is no previous run.
pub fn select_run(starts: &[u64], previous: bool) -> Option<(u64, Option<u64>)> {
    if previous {
        match starts {
            [.., a, b] => Some(((*a).min(*b), Some(*b))),
            _ => None,
        }
    } else {
        Some((starts.last().copied().unwrap_or(0), None))
    }
}

/// The first byte of the last `n` lines within `[start, end)` of `file` (a final newline
/// ends the last line, it does not start an empty one). Scans backwards a chunk at a time,
/// counting line breaks, so memory stays at one chunk whatever `n` is.
async fn find_tail(
    file: &mut tokio::fs::File,
    start: u64,
    end: u64,
    n: u64,
) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(end);
    }
    let mut pos = end;
    let mut seen = 0;
    let mut last_chunk = true;
    let mut chunk = vec![0u8; CHUNK];
    while pos > start {
        let take = (pos - start).min(CHUNK as u64) as usize;
        pos -= take as u64;
        let buf = chunk.get_mut(..take).unwrap_or_default();
        file.seek(SeekFrom::Start(pos)).await?;
        file.read_exact(buf).await?;
        let mut slice: &[u8] = buf;
        if std::mem::take(&mut last_chunk) {
            slice = slice.strip_suffix(b"\n").unwrap_or(slice);
        }
        for (i, b) in slice.iter().enumerate().rev() {
            if *b == b'\n' {
                seen += 1;
                if seen == n {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
    }
    Ok(start)
}

/// Send `[*pos, end)` of `file` (at most `*limit` bytes); false when the client went away.
async fn send_range(
    file: &mut tokio::fs::File,
    pos: &mut u64,
    end: u64,
    limit: &mut u64,
    tx: &mpsc::Sender<Bytes>,
) -> std::io::Result<bool> {
    while *pos < end && *limit > 0 {
        let take = (end - *pos).min(CHUNK as u64).min(*limit) as usize;
        let mut buf = vec![0u8; take];
        let got = file.read(&mut buf).await?;
        if got == 0 {
            break;
        }
        buf.truncate(got);
        *pos += got as u64;
        *limit -= got as u64;
        if tx.send(Bytes::from(buf)).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn log_path(pods_dir: &Path, ns: &str, pod: &str) -> PathBuf {
    pods_dir.join(format!("{ns}_{pod}")).join("log")
}

/// Answer a log request for `pod` (the stored object) in `ns`.
pub async fn serve(
    pods_dir: Option<&Path>,
    ns: &str,
    pod: &Value,
    q: &LogQuery,
) -> Result<Response<Body>, ApiError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let container = container_of(pod, q)?;
    let waiting = || {
        ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        ))
    };
    let pods_dir = pods_dir.ok_or_else(waiting)?;
    let log = log_path(pods_dir, ns, &name);
    let starts_file = log.with_extension("starts");
    let starts = parse_starts(
        &tokio::fs::read_to_string(&starts_file)
            .await
            .unwrap_or_default(),
    );
    let (start, end) = select_run(&starts, q.previous).ok_or_else(|| {
        ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        ))
    })?;
    let mut file = tokio::fs::File::open(&log).await.map_err(|_| waiting())?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("reading {}: {e}", log.display())))?
        .len();
    let end_now = end.unwrap_or(len).min(len);
    let mut from = start.min(end_now);
    if let Some(n) = q.tail_lines {
        from = find_tail(&mut file, from, end_now, n)
            .await
            .map_err(|e| ApiError::internal(format!("reading {}: {e}", log.display())))?;
    }
    // Only the current run grows; a previous run is a fixed range.
    let follow = q.follow && end.is_none();
    let runs_now = starts.len();
    let limit = q.limit_bytes.unwrap_or(u64::MAX);
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let _ = stream_range(
            file,
            from,
            end_now,
            follow.then_some((starts_file, runs_now)),
            limit,
            tx,
        )
        .await;
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(r)
}

/// Send `[from, end)` of `file`; with `follow` (the starts file and the number of runs it
/// listed), keep sending what is appended until the container is launched again (the run
/// being followed ended), the log disappears, the client goes away or `limit` bytes went.
async fn stream_range(
    mut file: tokio::fs::File,
    from: u64,
    end: u64,
    follow: Option<(PathBuf, usize)>,
    mut limit: u64,
    tx: mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(from)).await?;
    let mut pos = from;
    let mut end = end;
    loop {
        if !send_range(&mut file, &mut pos, end, &mut limit, &tx).await? {
            return Ok(());
        }
        let Some((starts_file, runs)) = &follow else {
            return Ok(());
        };
        if limit == 0 {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
        let len = file.metadata().await?.len();
        if len < pos {
            return Ok(());
        }
        let now_runs = parse_starts(
            &tokio::fs::read_to_string(starts_file)
                .await
                .unwrap_or_default(),
        );
        if now_runs.len() != *runs {
            // A new run began: send the rest of the followed one, then end.
            let stop = now_runs.get(*runs).copied().unwrap_or(len).min(len);
            let stop = stop.max(pos);
            send_range(&mut file, &mut pos, stop, &mut limit, &tx).await?;
            return Ok(());
        }
        end = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_from_start_offsets() {
        assert_eq!(select_run(&[], false), Some((0, None)));
        assert_eq!(select_run(&[], true), None);
        assert_eq!(select_run(&[0], true), None);
        assert_eq!(select_run(&[0, 120, 300], false), Some((300, None)));
        assert_eq!(select_run(&[0, 120, 300], true), Some((120, Some(300))));
        assert_eq!(parse_starts("0\n12\nbad\n40\n"), vec![0, 12, 40]);
    }

    #[tokio::test]
    async fn find_tail_across_chunks() {
        let dir = std::env::temp_dir().join(format!("tandem-logs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("log");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&p, &text).unwrap();
        let mut f = tokio::fs::File::open(&p).await.unwrap();
        let len = text.len() as u64;
        let at = find_tail(&mut f, 0, len, 3).await.unwrap();
        assert_eq!(&text[at as usize..], "line 19997\nline 19998\nline 19999\n");
        assert_eq!(find_tail(&mut f, 0, len, 1_000_000).await.unwrap(), 0);
        let at = find_tail(&mut f, 0, len, 15_000).await.unwrap();
        assert!(text[at as usize..].starts_with("line 5000\n"));
        assert_eq!(find_tail(&mut f, 0, len, 0).await.unwrap(), len);
        std::fs::write(&p, "a\nno-newline").unwrap();
        let mut f = tokio::fs::File::open(&p).await.unwrap();
        assert_eq!(find_tail(&mut f, 0, 12, 1).await.unwrap(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn container_must_exist() {
        let pod = json!({"metadata": {"name": "cache-0"},
            "spec": {"containers": [{"name": "server"}]}});
        let q = |c: Option<&str>| LogQuery {
            container: c.map(String::from),
            ..Default::default()
        };
        assert_eq!(container_of(&pod, &q(None)).unwrap(), "server");
        assert_eq!(container_of(&pod, &q(Some("server"))).unwrap(), "server");
        let e = container_of(&pod, &q(Some("nope"))).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.to_status()["message"]
            .as_str()
            .unwrap()
            .contains("container nope is not valid for pod cache-0"));
    }
}
