//! What knocking on the activation service costs the process: `cargo bench --bench activation`.
//!
//! Runs `partner-operator sandbox` (API server, SMTP server and operator in one process, its
//! descriptors limited to `NOFILE`, 1,024 by default, as in many pods) and prints, for each
//! attack, the process's resident memory (`VmRSS`, peak `VmHWM`) and open descriptors
//! (`/proc/PID/fd`) before and after, and whether the rest of the process still answers (its
//! API server through `kubectl get namespaces`, its SMTP server's greeting), each within 5 s:
//!
//! 1. megabyte ids: `REQUESTS` (10,000) requests from `CLIENTS` (16) connections at once and
//!    `CLIENT_ADDRESSES` (2) loopback addresses, each with a new 1 MiB tenant id (in a GET's
//!    query, a form POST's query, the API's JSON body);
//! 2. slow connections: `SLOW` (2,000) clients sending a request's head a byte a second (and
//!    reconnecting when dropped), for `HOLD_SECONDS` (20).
//!
//! `PARTNER_OPERATOR_BIN` measures another build of the binary (e.g. the one before a change).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Sandbox {
    child: Child,
    dir: tempfile::TempDir,
    activation: SocketAddr,
    smtp: SocketAddr,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(nofile: u64) -> Sandbox {
    let binary = std::env::var("PARTNER_OPERATOR_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_partner-operator").to_string());
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(binary)
        .args(["sandbox", "--webhook-port", "0", "--activation-port"])
        .arg(port.to_string())
        .arg("--state-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("sandbox.log")).unwrap())
        .spawn()
        .unwrap();
    let limit = libc::rlimit {
        rlim_cur: nofile,
        rlim_max: nofile,
    };
    // SAFETY: prlimit reads `limit` and writes nothing.
    let set = unsafe {
        libc::prlimit(
            child.id() as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    let mut smtp = None;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("smtp://"))
        {
            smtp = url.parse().ok();
        }
        if line.starts_with("stop ") {
            break;
        }
    }
    // Keep reading (and dropping) what it prints, so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Sandbox {
        child,
        dir,
        activation: SocketAddr::from(([127, 0, 0, 1], port)),
        smtp: smtp.expect("the summary names the SMTP server"),
    }
}

impl Sandbox {
    fn status_kb(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The API server answers (stock kubectl, 5 s) and the SMTP server greets (5 s).
    async fn rest_answers(&self) -> (bool, bool) {
        let kubeconfig = self.dir.path().join("kubeconfig");
        let api = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "namespaces", "--request-timeout=5s"])
            .output();
        let api = tokio::time::timeout(Duration::from_secs(10), api)
            .await
            .is_ok_and(|o| o.is_ok_and(|o| o.status.success()));
        let smtp = tokio::time::timeout(Duration::from_secs(5), async {
            let mut stream = TcpStream::connect(self.smtp).await.ok()?;
            let mut greeting = [0u8; 3];
            stream.read_exact(&mut greeting).await.ok()?;
            Some(greeting == *b"220")
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(false);
        (api, smtp)
    }

    async fn report(&self, when: &str) {
        let (api, smtp) = self.rest_answers().await;
        println!(
            "  {when:<28} VmRSS {:>7} kB  VmHWM {:>7} kB  descriptors {:>5}  API server answers: {}  SMTP greets: {}",
            self.status_kb("VmRSS:"),
            self.status_kb("VmHWM:"),
            self.descriptors(),
            if api { "yes" } else { "NO" },
            if smtp { "yes" } else { "NO" },
        );
    }
}

/// Request `n`: a new megabyte id each time (each a new key for a limiter that kept what it was
/// given), from one of `CLIENT_ADDRESSES` loopback addresses.
async fn hostile_request(addr: SocketAddr, n: usize, filler: &str, addresses: usize) -> u16 {
    let id = format!("{n:08}{filler}");
    let token = "0".repeat(64);
    let raw = match n % 3 {
        0 => format!("GET /activate?tenant={id}&token={token} HTTP/1.1\r\nHost: x\r\n\r\n"),
        1 => format!(
            "POST /activate?tenant={id}&token={token} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        ),
        _ => {
            let body = format!(r#"{{"tenant":"{id}","token":"{token}"}}"#);
            format!(
                "POST /v1/activations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
    };
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    let from = SocketAddr::from(([127, 0, 0, 2 + (n % addresses) as u8], 0));
    socket.bind(from).unwrap();
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(5), socket.connect(addr)).await
    else {
        return 0;
    };
    let _ = stream.write_all(raw.as_bytes()).await;
    let mut head = [0u8; 12];
    match tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut head)).await {
        Ok(Ok(_)) => std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

async fn megabyte_ids(sandbox: &Sandbox) {
    let (requests, clients) = (env_or("REQUESTS", 10_000), env_or("CLIENTS", 16));
    let addresses = env_or("CLIENT_ADDRESSES", 2).clamp(1, 250);
    println!(
        "1. megabyte ids: {requests} requests, {clients} at once, from {addresses} addresses, \
         a new 1 MiB tenant id each"
    );
    sandbox.report("before").await;
    let id: Arc<str> = "a".repeat(1 << 20).into();
    let next = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (id, next, statuses) = (id.clone(), next.clone(), statuses.clone());
            let addr = sandbox.activation;
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= requests {
                        return;
                    }
                    let status = hostile_request(addr, n, &id, addresses).await;
                    *statuses.lock().unwrap().entry(status).or_insert(0) += 1;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    println!(
        "  sent in {:.1} s; answers (0: closed without one): {:?}",
        started.elapsed().as_secs_f64(),
        statuses.lock().unwrap()
    );
    sandbox.report("after").await;
}

async fn slow_connections(sandbox: &Sandbox) {
    let (slow, hold) = (env_or("SLOW", 2_000), env_or("HOLD_SECONDS", 20));
    println!("2. slow connections: {slow} clients, a byte a second, for {hold} s");
    sandbox.report("before").await;
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    for _ in 0..slow {
        let (stop, connected, addr) = (stop.clone(), connected.clone(), sandbox.activation);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(mut stream)) =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
                else {
                    continue;
                };
                connected.fetch_add(1, Ordering::Relaxed);
                for byte in b"GET /activate HTTP/1.1\r\n".iter().cycle() {
                    if stop.load(Ordering::Relaxed) || stream.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(hold as u64)).await;
    sandbox.report("during").await;
    println!("  connections made: {}", connected.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(15)).await;
    sandbox.report("15 s after").await;
}

fn raise_own_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct given, nothing else.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(16_384);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

#[tokio::main]
async fn main() {
    raise_own_descriptor_limit();
    let nofile = env_or("NOFILE", 1024) as u64;
    println!("partner-operator sandbox, descriptors limited to {nofile}");
    {
        let sandbox = start(nofile);
        tokio::time::sleep(Duration::from_secs(2)).await;
        megabyte_ids(&sandbox).await;
    }
    {
        let sandbox = start(nofile);
        tokio::time::sleep(Duration::from_secs(2)).await;
        slow_connections(&sandbox).await;
    }
}
