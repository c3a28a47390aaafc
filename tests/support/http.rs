//! Plain HTTP/1.1 requests to the operator's services, one connection each.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response: status, headers (names lowercased) and body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; a failure names the content type the server gave it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            let content_type = self.header("content-type").unwrap_or("none");
            panic!("not JSON ({e}; content type {content_type}): {}", self.body)
        })
    }
}

/// `method target` (path and query) with `body` of `content_type`, and extra `headers`.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> Response {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    // The Host header is the address, unless the caller sends its own.
    let host = if headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        String::new()
    } else {
        format!("Host: {addr}\r\n")
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\n{host}Connection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    // Read the head, then as much body as it announces (a server may keep the connection
    // open despite `Connection: close`), else up to the end.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let body_start = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before a whole head: {raw:?}");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..body_start]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(length) => {
            while raw.len() < body_start + length {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the connection closed inside the body");
                raw.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut raw).await.unwrap();
        }
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `POST path` with a JSON body.
pub async fn post_json(
    addr: std::net::SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Response {
    request(
        addr,
        "POST",
        path,
        &[],
        "application/json",
        &body.to_string(),
    )
    .await
}
